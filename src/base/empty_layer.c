/* An empty translation unit for a layer that has no code yet (ISO C forbids empty files). */
typedef int nx_empty_layer_unused;
