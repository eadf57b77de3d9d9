/* status.c: nx_strerror and nx_code_name, generated from NX_STATUS_MAP (nexuslite.h). */
#include "base.h"

const char *nx_strerror(int rc) {
  switch (rc) {
#define NX_STATUS_TEXT_(name, value, text) case value: return text;
    NX_STATUS_MAP(NX_STATUS_TEXT_)
#undef NX_STATUS_TEXT_
  default: return "unknown status code";
  }
}

const char *nx_code_name(int rc) {
  switch (rc) {
#define NX_STATUS_NAME_(name, value, text) case value: return "NX_" #name;
    NX_STATUS_MAP(NX_STATUS_NAME_)
#undef NX_STATUS_NAME_
  default: return "NX_UNKNOWN";
  }
}

const char *nx_version(void) { return NX_VERSION_STRING; }
