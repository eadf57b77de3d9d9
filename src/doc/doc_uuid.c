/*
 * doc_uuid.c: UUIDs for generated _id values (RFC 9562), stored as BSON binary subtype 4.
 *
 * Invariants:
 *   1. Randomness comes from OpenSSL RAND_bytes; a failure is NX_CRYPTO, never a weak fallback.
 *   2. Version 7 values from one process strictly increase bytewise: when the clock stalls or
 *      steps back, the previous value's 74-bit random field is incremented (RFC 9562 method 2's
 *      spirit), carrying into the timestamp if it overflows. So _id order follows insert order.
 */
#include <pthread.h>
#include <string.h>

#include <openssl/rand.h>

#include "doc.h"

int doc_gen_uuid_v4(uint8_t out[16]) {
  if (RAND_bytes(out, 16) != 1) return nx_err(NX_CRYPTO, "uuid: RAND_bytes failed");
  out[6] = (uint8_t)((out[6] & 0x0F) | 0x40);
  out[8] = (uint8_t)((out[8] & 0x3F) | 0x80);
  return NX_OK;
}

static pthread_mutex_t g_v7_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t g_last_ts; /* 48-bit ms of the last value */
static uint64_t g_last_ra; /* its 12-bit rand_a */
static uint64_t g_last_rb; /* its 62-bit rand_b */
static bool g_have_last;

static void pack_v7(uint8_t out[16], uint64_t ts, uint64_t ra, uint64_t rb) {
  for (int i = 0; i < 6; i++)
    out[i] = (uint8_t)(ts >> (40 - 8 * i));
  out[6] = (uint8_t)(0x70 | ((ra >> 8) & 0x0F));
  out[7] = (uint8_t)(ra & 0xFF);
  out[8] = (uint8_t)(0x80 | ((rb >> 56) & 0x3F));
  for (int i = 9; i < 16; i++)
    out[i] = (uint8_t)(rb >> (8 * (15 - i)));
}

int doc_gen_uuid_v7(int64_t now_ms, uint8_t out[16]) {
  uint8_t rnd[10];
  if (RAND_bytes(rnd, sizeof rnd) != 1) return nx_err(NX_CRYPTO, "uuid: RAND_bytes failed");
  uint64_t ts = (uint64_t)(now_ms < 0 ? 0 : now_ms) & 0xFFFFFFFFFFFFull;
  uint64_t ra = ((uint64_t)rnd[0] << 8 | rnd[1]) & 0xFFFu;
  uint64_t rb = 0;
  for (int i = 2; i < 10; i++)
    rb = rb << 8 | rnd[i];
  rb &= 0x3FFFFFFFFFFFFFFFull;
  pthread_mutex_lock(&g_v7_lock);
  if (g_have_last && ts <= g_last_ts) {
    ts = g_last_ts;
    ra = g_last_ra;
    rb = g_last_rb + 1;
    if (rb > 0x3FFFFFFFFFFFFFFFull) {
      rb = 0;
      if (++ra > 0xFFFu) {
        ra = 0;
        ts = (ts + 1) & 0xFFFFFFFFFFFFull;
      }
    }
  }
  g_last_ts = ts;
  g_last_ra = ra;
  g_last_rb = rb;
  g_have_last = true;
  pthread_mutex_unlock(&g_v7_lock);
  pack_v7(out, ts, ra, rb);
  return NX_OK;
}

bool doc_append_uuid(bson_t *doc, const char *key, const uint8_t uuid[16]) {
  return bson_append_binary(doc, key, -1, BSON_SUBTYPE_UUID, uuid, 16);
}
