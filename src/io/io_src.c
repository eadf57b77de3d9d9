/*
 * io_src.c: the byte source under every reader: a file read through the OS layer (so tests can
 * inject read failures) or a memory block, in a fixed-size buffer.
 *
 * Invariants:
 *   1. buf holds UTF-8 bytes: a UTF-16 input (BOM FF FE or FE FF) is transcoded chunk by chunk; a
 *      code unit or surrogate pair cut by a read waits in `carry`. An unpaired surrogate is
 *      NX_PARSE with its offset in the raw file.
 *   2. The UTF-8 BOM is skipped; offsets still count it, so they are file offsets.
 *   3. Memory is IO_SRC_CHUNK (+ the transcoding buffer) whatever the file size; io_src_fill keeps
 *      the unconsumed tail and grows buf only when the caller consumed nothing (a record that is
 *      longer than the buffer is the caller's business: readers copy it out in pieces).
 */
#include <string.h>

#include "io.h"

#define IO_SRC_CHUNK (256u * 1024u)

static int src_init_common(io_src *s) {
  s->cap = IO_SRC_CHUNK;
  if (!s->file && s->raw_size + 64 < s->cap) s->cap = (size_t)s->raw_size + 64; /* small inputs */
  s->buf = nx_malloc(s->cap);
  if (!s->buf) return nx_err(NX_NOMEM, "%s: out of memory for the read buffer", s->name);
  return NX_OK;
}

/* Reads up to n raw bytes at raw_off into dst. */
static int raw_read(io_src *s, uint8_t *dst, size_t n, size_t *got) {
  *got = 0;
  if (s->raw_off >= s->raw_size) return NX_OK;
  uint64_t left = s->raw_size - s->raw_off;
  if (n > left) n = (size_t)left;
  if (s->file) {
    int rc = os_pread(s->file, dst, n, s->raw_off, got);
    if (rc) return nx_err_prefix(rc, "%s: reading at byte offset %llu: ", s->name,
                                 (unsigned long long)s->raw_off);
  } else {
    memcpy(dst, s->mem + s->raw_off, n);
    *got = n;
  }
  s->raw_off += *got;
  return NX_OK;
}

/* Looks at the first bytes for a BOM and sets up the stream. */
static int src_bom(io_src *s) {
  uint8_t head[4] = {0, 0, 0, 0};
  size_t got = 0;
  int rc = raw_read(s, head, sizeof head, &got);
  if (rc) return rc;
  s->raw_off = 0;
  if (got >= 4 && ((head[0] == 0xFF && head[1] == 0xFE && head[2] == 0 && head[3] == 0) ||
                   (head[0] == 0 && head[1] == 0 && head[2] == 0xFE && head[3] == 0xFF)))
    return nx_err(NX_INVALID, "%s: the file is UTF-32 (byte order mark at offset 0); convert it "
                  "to UTF-8, e.g. with iconv -f UTF-32 -t UTF-8", s->name);
  if (got >= 3 && head[0] == 0xEF && head[1] == 0xBB && head[2] == 0xBF) {
    s->raw_off = 3;
    s->off = 3;
  } else if (got >= 2 && head[0] == 0xFF && head[1] == 0xFE) {
    s->raw_off = 2;
    s->utf16 = 1;
  } else if (got >= 2 && head[0] == 0xFE && head[1] == 0xFF) {
    s->raw_off = 2;
    s->utf16 = 2;
  }
  if (s->utf16) {
    s->raw = nx_malloc(IO_SRC_CHUNK);
    if (!s->raw) return nx_err(NX_NOMEM, "%s: out of memory for transcoding", s->name);
  }
  return NX_OK;
}

int io_src_open_file(io_src *s, const char *path) {
  memset(s, 0, sizeof *s);
  s->name = path;
  int rc = os_open(path, OS_RDONLY, &s->file);
  if (rc) return rc;
  rc = os_size(s->file, &s->raw_size);
  if (rc == NX_OK) rc = src_init_common(s);
  if (rc == NX_OK) rc = src_bom(s);
  if (rc) io_src_close(s);
  return rc;
}

int io_src_open_mem(io_src *s, const void *data, size_t n, const char *name) {
  memset(s, 0, sizeof *s);
  s->name = name ? name : "<memory>";
  s->mem = data;
  s->raw_size = n;
  int rc = src_init_common(s);
  if (rc == NX_OK) rc = src_bom(s);
  if (rc) io_src_close(s);
  return rc;
}

void io_src_close(io_src *s) {
  if (s->file) os_close(s->file);
  nx_free(s->buf);
  nx_free(s->raw);
  memset(s, 0, sizeof *s);
}

static void put_utf8(uint8_t *d, size_t *k, uint32_t cp) {
  if (cp < 0x80) {
    d[(*k)++] = (uint8_t)cp;
  } else if (cp < 0x800) {
    d[(*k)++] = (uint8_t)(0xC0 | (cp >> 6));
    d[(*k)++] = (uint8_t)(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    d[(*k)++] = (uint8_t)(0xE0 | (cp >> 12));
    d[(*k)++] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
    d[(*k)++] = (uint8_t)(0x80 | (cp & 0x3F));
  } else {
    d[(*k)++] = (uint8_t)(0xF0 | (cp >> 18));
    d[(*k)++] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
    d[(*k)++] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
    d[(*k)++] = (uint8_t)(0x80 | (cp & 0x3F));
  }
}

/* Transcodes UTF-16 raw bytes into buf[len..cap). Each code unit yields at most 3 bytes and a
 * pair 4, so reading (cap - len) / 3 raw bytes' worth of units always fits. */
static int fill_utf16(io_src *s) {
  size_t room = s->cap - s->len;
  size_t want = (room / 3) & ~(size_t)1;
  if (want > IO_SRC_CHUNK - 4) want = IO_SRC_CHUNK - 4;
  if (want < 4) return NX_OK;
  memcpy(s->raw, s->carry, s->ncarry);
  uint64_t raw_start = s->raw_off - s->ncarry;
  size_t got = 0;
  int rc = raw_read(s, s->raw + s->ncarry, want - s->ncarry, &got);
  if (rc) return rc;
  size_t n = s->ncarry + got;
  s->ncarry = 0;
  bool at_end = s->raw_off >= s->raw_size || got == 0; /* got == 0: the file shrank */
  size_t i = 0;
  uint8_t *d = s->buf + s->len;
  size_t k = 0;
  while (i + 1 < n) {
    uint32_t u = s->utf16 == 1 ? (uint32_t)(s->raw[i] | (s->raw[i + 1] << 8))
                               : (uint32_t)((s->raw[i] << 8) | s->raw[i + 1]);
    if (u >= 0xD800 && u <= 0xDBFF) {
      if (i + 3 >= n) break; /* the low half is in the next read */
      uint32_t lo = s->utf16 == 1 ? (uint32_t)(s->raw[i + 2] | (s->raw[i + 3] << 8))
                                  : (uint32_t)((s->raw[i + 2] << 8) | s->raw[i + 3]);
      if (lo < 0xDC00 || lo > 0xDFFF)
        return nx_err(NX_PARSE, "%s: invalid UTF-16: unpaired high surrogate at byte offset %llu",
                      s->name, (unsigned long long)(raw_start + i));
      put_utf8(d, &k, 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00));
      i += 4;
      continue;
    }
    if (u >= 0xDC00 && u <= 0xDFFF)
      return nx_err(NX_PARSE, "%s: invalid UTF-16: unpaired low surrogate at byte offset %llu",
                    s->name, (unsigned long long)(raw_start + i));
    put_utf8(d, &k, u);
    i += 2;
  }
  if (i < n) {
    if (at_end)
      return nx_err(NX_PARSE, "%s: invalid UTF-16: the file ends inside a code unit or surrogate "
                    "pair at byte offset %llu", s->name, (unsigned long long)(raw_start + i));
    s->ncarry = n - i;
    memcpy(s->carry, s->raw + i, s->ncarry);
  }
  s->len += k;
  if (at_end && s->ncarry == 0) s->eof = true;
  return NX_OK;
}

int io_src_fill(io_src *s) {
  if (s->eof) return NX_OK;
  if (s->pos > 0) {
    memmove(s->buf, s->buf + s->pos, s->len - s->pos);
    s->off += s->pos;
    s->len -= s->pos;
    s->pos = 0;
  }
  if (s->cap - s->len < 16) {
    /* the caller holds a whole buffer unconsumed: grow (readers cap their records) */
    size_t ncap = s->cap * 2;
    uint8_t *nb = nx_realloc(s->buf, ncap);
    if (!nb) return nx_err(NX_NOMEM, "%s: out of memory growing the read buffer", s->name);
    s->buf = nb;
    s->cap = ncap;
  }
  if (s->utf16) {
    size_t before = s->len;
    do {
      int rc = fill_utf16(s);
      if (rc) return rc;
    } while (s->len == before && !s->eof);
    return NX_OK;
  }
  size_t got = 0;
  int rc = raw_read(s, s->buf + s->len, s->cap - s->len, &got);
  if (rc) return rc;
  s->len += got;
  if (s->raw_off >= s->raw_size || got == 0) s->eof = true;
  return NX_OK;
}
