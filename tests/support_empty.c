/* Keeps the support library non-empty before any helper file exists. */
typedef int nx_support_empty_unused;
