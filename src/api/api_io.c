/*
 * api_io.c: the public entry points nx_import and nx_export. They check arguments, copy the
 * option structs by their `size` (an older, smaller struct keeps the defaults of newer fields),
 * convert the export's filter/projection/sort inputs to BSON, and hand over to the io layer
 * (src/io/io_import.c, src/io/io_export.c).
 */
#include <string.h>

#include "api_int.h"
#include "io.h"

int nx_import(nx_db *db, const char *path, const char *coll, const nx_import_opts *opts,
              nx_import_report *report) {
  nx_err_clear();
  int rc = api_check(db, coll, "nx_import");
  if (rc != NX_OK) return rc;
  if (!coll) return nx_err(NX_MISUSE, "nx_import: collection name is NULL");
  if (!path || !*path) return nx_err(NX_MISUSE, "nx_import: path is empty");
  nx_import_opts o = NX_IMPORT_OPTS_INIT;
  if (opts) {
    if (opts->size < sizeof(size_t) || opts->size > sizeof o)
      return nx_err(NX_MISUSE, "nx_import: opts->size is %zu; initialise options with "
                    "NX_IMPORT_OPTS_INIT", opts->size);
    memcpy(&o, opts, opts->size);
    o.size = sizeof o;
  }
  if ((unsigned)o.format > NX_FORMAT_BSON)
    return nx_err(NX_INVALID, "nx_import: unknown format %d", (int)o.format);
  if (o.delimiter == '"' || o.delimiter == '\n' || o.delimiter == '\r')
    return nx_err(NX_INVALID, "nx_import: the CSV delimiter cannot be a quote or a line end");
  nx_import_report rep;
  rc = io_import(db, path, coll, &o, &rep);
  if (report) *report = rep;
  return rc;
}

int nx_export(nx_db *db, const char *coll, const char *path, const nx_export_opts *opts,
              nx_export_report *report) {
  nx_err_clear();
  int rc = api_check(db, coll, "nx_export");
  if (rc != NX_OK) return rc;
  if (!coll) return nx_err(NX_MISUSE, "nx_export: collection name is NULL");
  if (!path || !*path) return nx_err(NX_MISUSE, "nx_export: path is empty");
  nx_export_opts o = NX_EXPORT_OPTS_INIT;
  if (opts) {
    if (opts->size < sizeof(size_t) || opts->size > sizeof o)
      return nx_err(NX_MISUSE, "nx_export: opts->size is %zu; initialise options with "
                    "NX_EXPORT_OPTS_INIT", opts->size);
    memcpy(&o, opts, opts->size);
    o.size = sizeof o;
  }
  if ((unsigned)o.format > NX_FORMAT_BSON)
    return nx_err(NX_INVALID, "nx_export: unknown format %d", (int)o.format);
  api_doc filter, proj, sort;
  rc = api_in(o.filter, "nx_export filter", false, &filter);
  if (rc != NX_OK) return rc;
  rc = api_in(o.projection, "nx_export projection", false, &proj);
  if (rc != NX_OK) {
    api_in_free(&filter);
    return rc;
  }
  rc = api_in(o.sort, "nx_export sort", false, &sort);
  if (rc == NX_OK) {
    nx_export_report rep;
    rc = io_export(db, coll, path, &o, filter.p, proj.p, sort.p, &rep);
    if (report) *report = rep;
    api_in_free(&sort);
  }
  api_in_free(&proj);
  api_in_free(&filter);
  return rc;
}
