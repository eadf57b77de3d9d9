/*
 * io_text.c: text helpers of the io layer: UTF-8 validation with the offset of the first bad
 * byte, JSON string escaping (for the error sidecar and CSV column names), ISO-8601 dates, and
 * format names.
 */
#include <stdio.h>
#include <string.h>

#include "io.h"

const char *io_format_name(nx_format f) {
  switch (f) {
  case NX_FORMAT_NDJSON: return "ndjson";
  case NX_FORMAT_JSON: return "json";
  case NX_FORMAT_CSV: return "csv";
  case NX_FORMAT_BSON: return "bson";
  default: return "auto";
  }
}

/* Length of the valid UTF-8 sequence at s (n bytes available), or 0 when invalid (RFC 3629:
 * no overlong forms, no surrogates, nothing above U+10FFFF). */
static size_t utf8_seq(const uint8_t *s, size_t n) {
  uint8_t c = s[0];
  if (c < 0x80) return 1;
  if (c < 0xC2) return 0;
  if (c < 0xE0) return (n >= 2 && (s[1] & 0xC0) == 0x80) ? 2 : 0;
  if (c < 0xF0) {
    if (n < 3 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80) return 0;
    if (c == 0xE0 && s[1] < 0xA0) return 0; /* overlong */
    if (c == 0xED && s[1] >= 0xA0) return 0; /* surrogate */
    return 3;
  }
  if (c < 0xF5) {
    if (n < 4 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80 || (s[3] & 0xC0) != 0x80) return 0;
    if (c == 0xF0 && s[1] < 0x90) return 0; /* overlong */
    if (c == 0xF4 && s[1] >= 0x90) return 0; /* above U+10FFFF */
    return 4;
  }
  return 0;
}

size_t io_utf8_check(const uint8_t *s, size_t n, bool no_nul) {
  size_t i = 0;
  while (i < n) {
    if (s[i] < 0x80) {
      if (no_nul && s[i] == 0) return i;
      i++;
      continue;
    }
    size_t k = utf8_seq(s + i, n - i);
    if (!k) return i;
    i += k;
  }
  return n;
}

int io_json_escape(nx_buf *b, const void *p, size_t n) {
  static const char hex[] = "0123456789abcdef";
  const uint8_t *s = p;
  int rc = nx_buf_append(b, "\"", 1);
  size_t i = 0;
  while (rc == NX_OK && i < n) {
    uint8_t c = s[i];
    if (c >= 0x80) {
      size_t k = utf8_seq(s + i, n - i);
      if (k) {
        rc = nx_buf_append(b, s + i, k);
        i += k;
      } else {
        rc = nx_buf_append(b, "\xEF\xBF\xBD", 3); /* U+FFFD for a bad byte */
        i++;
      }
      continue;
    }
    if (c == '"' || c == '\\') {
      char e[2] = {'\\', (char)c};
      rc = nx_buf_append(b, e, 2);
    } else if (c < 0x20) {
      char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
      if (c == '\n') rc = nx_buf_append(b, "\\n", 2);
      else if (c == '\r') rc = nx_buf_append(b, "\\r", 2);
      else if (c == '\t') rc = nx_buf_append(b, "\\t", 2);
      else rc = nx_buf_append(b, e, 6);
    } else {
      size_t j = i + 1;
      while (j < n && s[j] >= 0x20 && s[j] < 0x80 && s[j] != '"' && s[j] != '\\') j++;
      rc = nx_buf_append(b, s + i, j - i);
      i = j;
      continue;
    }
    i++;
  }
  if (rc == NX_OK) rc = nx_buf_append(b, "\"", 1);
  return rc;
}

/* ---- ISO-8601 ---- */
static bool digits(const char *s, size_t n, size_t at, size_t k, int *out) {
  if (at + k > n) return false;
  int v = 0;
  for (size_t i = 0; i < k; i++) {
    char c = s[at + i];
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  *out = v;
  return true;
}

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar (H. Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, int m, int d) {
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  int64_t yoe = y - era * 400;
  int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

static int days_in_month(int y, int m) {
  static const int dm[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0)) return 29;
  return dm[m - 1];
}

bool io_parse_iso8601(const char *s, size_t n, int64_t *ms) {
  int y, mo, d, h = 0, mi = 0, sec = 0, frac = 0;
  if (n < 10 || !digits(s, n, 0, 4, &y) || s[4] != '-' || !digits(s, n, 5, 2, &mo) || s[7] != '-' ||
      !digits(s, n, 8, 2, &d))
    return false;
  if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo)) return false;
  size_t i = 10;
  int64_t tz_min = 0;
  if (i < n) {
    if (s[i] != 'T' && s[i] != 't' && s[i] != ' ') return false;
    i++;
    if (!digits(s, n, i, 2, &h) || i + 2 >= n || s[i + 2] != ':' || !digits(s, n, i + 3, 2, &mi))
      return false;
    i += 5;
    if (i < n && s[i] == ':') {
      if (!digits(s, n, i + 1, 2, &sec)) return false;
      i += 3;
      if (i < n && (s[i] == '.' || s[i] == ',')) {
        i++;
        size_t k = 0;
        int scale = 100;
        while (i < n && s[i] >= '0' && s[i] <= '9') {
          if (k < 3) frac += (s[i] - '0') * scale;
          scale /= 10;
          k++;
          i++;
        }
        if (k == 0) return false;
      }
    }
    if (h > 23 || mi > 59 || sec > 60) return false;
    if (i < n) {
      if ((s[i] == 'Z' || s[i] == 'z') && i + 1 == n) {
        i++;
      } else if (s[i] == '+' || s[i] == '-') {
        int th, tm = 0;
        int sign = s[i] == '-' ? -1 : 1;
        if (!digits(s, n, i + 1, 2, &th)) return false;
        size_t j = i + 3;
        if (j < n && s[j] == ':') j++;
        if (j < n) {
          if (!digits(s, n, j, 2, &tm)) return false;
          j += 2;
        }
        if (j != n || th > 23 || tm > 59) return false;
        tz_min = sign * (th * 60 + tm);
        i = n;
      } else {
        return false;
      }
    }
  }
  if (i != n) return false;
  int64_t days = days_from_civil(y, mo, d);
  int64_t secs = days * 86400 + h * 3600 + mi * 60 + sec - tz_min * 60;
  *ms = secs * 1000 + frac;
  return true;
}

void io_format_iso8601(int64_t ms, char out[32]) {
  int64_t secs = ms / 1000, rem = ms % 1000;
  if (rem < 0) {
    rem += 1000;
    secs--;
  }
  int64_t days = secs / 86400, sod = secs % 86400;
  if (sod < 0) {
    sod += 86400;
    days--;
  }
  /* civil_from_days (H. Hinnant) */
  int64_t z = days + 719468;
  int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  int64_t doe = z - era * 146097;
  int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  int64_t y = yoe + era * 400;
  int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  int64_t mp = (5 * doy + 2) / 153;
  int64_t d = doy - (153 * mp + 2) / 5 + 1;
  int64_t m = mp < 10 ? mp + 3 : mp - 9;
  y += m <= 2;
  snprintf(out, 32, "%04lld-%02lld-%02lldT%02lld:%02lld:%02lld.%03lldZ", (long long)y, (long long)m,
           (long long)d, (long long)(sod / 3600), (long long)(sod / 60 % 60), (long long)(sod % 60),
           (long long)rem);
}
