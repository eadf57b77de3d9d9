/*
 * keyenc.h: order-preserving key encoding (DESIGN.md section 4). memcmp order of encoded keys
 * equals MongoDB's comparison order of the values (doc_cmp_values), across types and numeric
 * types: MinKey < null < numbers < strings < objects < arrays < binary < ObjectId < bool < date <
 * timestamp < regex < MaxKey; numbers by value across int32, int64, double and decimal128 (2^53+1,
 * -0.0 == 0, NaN, infinities). Strings escape NUL so compound keys stay prefix-free; a descending
 * component has its bytes inverted. Used for the _id keys of collection trees and for index keys
 * (encoded values, then the encoded _id).
 */
#ifndef NX_KEYENC_H
#define NX_KEYENC_H

#include <stdbool.h>

#include <bson/bson.h>

#include "base.h"

/* Appends the encoding of one value (one component of a key). */
int keyenc_append(nx_buf *out, const bson_value_t *v, bool descending);
/* Same, from an iterator positioned on the value. */
int keyenc_append_iter(nx_buf *out, const bson_iter_t *it, bool descending);
/* Encodes a single value as a whole key (e.g. an _id) into out (which is reset first). */
int keyenc_key(nx_buf *out, const bson_value_t *v);
/* Decodes one component starting at *pos; advances *pos. The value is owned by the caller
 * (bson_value_destroy). Used by explain and integrity checks; NX_CORRUPT on malformed bytes. */
int keyenc_decode(const uint8_t *p, size_t n, size_t *pos, bool descending, bson_value_t *out);

#endif
