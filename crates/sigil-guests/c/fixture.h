// Helpers shared by the test fixtures: a growable byte buffer, JSON string output that is
// always valid UTF-8, and a reader for flat JSON objects (`{"key": "string" | number, ...}`).
//
// Deliberately small. The fixtures exercise the host, not JSON parsing: the host has already
// validated every input against the tool's schema, so anything unexpected is simply "missing".
// Nothing here depends on the world the fixture is built for.
#ifndef SIGIL_FIXTURE_H
#define SIGIL_FIXTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

// A growable buffer. Its memory comes from malloc, so it can be handed to the generated
// bindings as a returned string: they free it after the call returns.
typedef struct {
  char *ptr;
  size_t len;
  size_t cap;
} buf_t;

static inline void buf_reserve(buf_t *b, size_t extra) {
  if (b->len + extra <= b->cap) {
    return;
  }
  size_t cap = b->cap ? b->cap : 64;
  while (cap < b->len + extra) {
    cap *= 2;
  }
  char *p = realloc(b->ptr, cap);
  if (p == NULL) {
    // Out of memory is a fault of the guest; trapping hands it to the host as one.
    __builtin_trap();
  }
  b->ptr = p;
  b->cap = cap;
}

static inline void buf_put(buf_t *b, const void *s, size_t n) {
  if (n == 0) {
    return;
  }
  buf_reserve(b, n);
  memcpy(b->ptr + b->len, s, n);
  b->len += n;
}

static inline void buf_puts(buf_t *b, const char *s) { buf_put(b, s, strlen(s)); }

static inline void buf_byte(buf_t *b, char c) { buf_put(b, &c, 1); }

static inline void buf_u64(buf_t *b, uint64_t v) {
  char digits[20];
  size_t n = 0;
  do {
    digits[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v != 0);
  while (n > 0) {
    buf_byte(b, digits[--n]);
  }
}

// The buffer's contents as a NUL-terminated C string owned by the caller.
static inline char *buf_cstr(buf_t *b) {
  buf_byte(b, '\0');
  b->len--;
  return b->ptr;
}

static inline void buf_free(buf_t *b) {
  free(b->ptr);
  b->ptr = NULL;
  b->len = b->cap = 0;
}

// Length of the well-formed UTF-8 sequence at `s`, or 0 if there is none.
static inline size_t utf8_sequence(const unsigned char *s, size_t n) {
  unsigned char c = s[0];
  size_t len;
  uint32_t cp, min;
  if (c < 0x80) {
    return 1;
  } else if ((c & 0xE0) == 0xC0) {
    len = 2, cp = c & 0x1F, min = 0x80;
  } else if ((c & 0xF0) == 0xE0) {
    len = 3, cp = c & 0x0F, min = 0x800;
  } else if ((c & 0xF8) == 0xF0) {
    len = 4, cp = c & 0x07, min = 0x10000;
  } else {
    return 0;
  }
  if (len > n) {
    return 0;
  }
  for (size_t i = 1; i < len; i++) {
    if ((s[i] & 0xC0) != 0x80) {
      return 0;
    }
    cp = (cp << 6) | (s[i] & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
    return 0;
  }
  return len;
}

static inline void buf_utf8(buf_t *b, uint32_t cp) {
  if (cp < 0x80) {
    buf_byte(b, (char)cp);
  } else if (cp < 0x800) {
    buf_byte(b, (char)(0xC0 | (cp >> 6)));
    buf_byte(b, (char)(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    buf_byte(b, (char)(0xE0 | (cp >> 12)));
    buf_byte(b, (char)(0x80 | ((cp >> 6) & 0x3F)));
    buf_byte(b, (char)(0x80 | (cp & 0x3F)));
  } else {
    buf_byte(b, (char)(0xF0 | (cp >> 18)));
    buf_byte(b, (char)(0x80 | ((cp >> 12) & 0x3F)));
    buf_byte(b, (char)(0x80 | ((cp >> 6) & 0x3F)));
    buf_byte(b, (char)(0x80 | (cp & 0x3F)));
  }
}

// Appends `s` as a JSON string literal. Strings cross the component boundary as UTF-8 and an
// ill-formed one traps the guest, so bytes that are not UTF-8 (a binary file, a garbled
// response) become U+FFFD instead.
static inline void buf_json_string(buf_t *b, const char *s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  const unsigned char *u = (const unsigned char *)s;
  buf_byte(b, '"');
  for (size_t i = 0; i < n;) {
    unsigned char c = u[i];
    if (c == '"' || c == '\\') {
      buf_byte(b, '\\');
      buf_byte(b, (char)c);
      i++;
    } else if (c == '\n') {
      buf_puts(b, "\\n"), i++;
    } else if (c == '\r') {
      buf_puts(b, "\\r"), i++;
    } else if (c == '\t') {
      buf_puts(b, "\\t"), i++;
    } else if (c < 0x20 || c == 0x7F) {
      buf_puts(b, "\\u00");
      buf_byte(b, hex[c >> 4]);
      buf_byte(b, hex[c & 0xF]);
      i++;
    } else {
      size_t len = utf8_sequence(u + i, n - i);
      if (len == 0) {
        buf_puts(b, "\\ufffd");
        i++;
      } else {
        buf_put(b, u + i, len);
        i += len;
      }
    }
  }
  buf_byte(b, '"');
}

static inline void buf_json_cstr(buf_t *b, const char *s) { buf_json_string(b, s, strlen(s)); }

// A position in JSON text that is not NUL-terminated.
typedef struct {
  const char *p;
  const char *end;
} json_t;

static inline void json_ws(json_t *j) {
  while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r')) {
    j->p++;
  }
}

static inline int json_hex4(json_t *j) {
  if (j->end - j->p < 4) {
    return -1;
  }
  int v = 0;
  for (int i = 0; i < 4; i++) {
    char c = *j->p++;
    v <<= 4;
    if (c >= '0' && c <= '9') {
      v |= c - '0';
    } else if (c >= 'a' && c <= 'f') {
      v |= c - 'a' + 10;
    } else if (c >= 'A' && c <= 'F') {
      v |= c - 'A' + 10;
    } else {
      return -1;
    }
  }
  return v;
}

// Reads a string literal at the cursor, unescaped, into `out` (when `out` is not NULL).
static inline bool json_string(json_t *j, buf_t *out) {
  if (j->p >= j->end || *j->p != '"') {
    return false;
  }
  j->p++;
  while (j->p < j->end) {
    char c = *j->p++;
    if (c == '"') {
      return true;
    }
    if (c != '\\') {
      if (out) {
        buf_byte(out, c);
      }
      continue;
    }
    if (j->p >= j->end) {
      return false;
    }
    char e = *j->p++;
    uint32_t cp;
    switch (e) {
    case '"': case '\\': case '/': cp = (unsigned char)e; break;
    case 'b': cp = '\b'; break;
    case 'f': cp = '\f'; break;
    case 'n': cp = '\n'; break;
    case 'r': cp = '\r'; break;
    case 't': cp = '\t'; break;
    case 'u': {
      int hi = json_hex4(j);
      if (hi < 0) {
        return false;
      }
      cp = (uint32_t)hi;
      if (hi >= 0xD800 && hi <= 0xDBFF && j->end - j->p >= 6 && j->p[0] == '\\' && j->p[1] == 'u') {
        json_t look = {j->p + 2, j->end};
        int lo = json_hex4(&look);
        if (lo >= 0xDC00 && lo <= 0xDFFF) {
          cp = 0x10000 + (((uint32_t)hi - 0xD800) << 10) + ((uint32_t)lo - 0xDC00);
          j->p = look.p;
        }
      }
      if (cp >= 0xD800 && cp <= 0xDFFF) {
        cp = 0xFFFD;  // a lone surrogate cannot be UTF-8
      }
      break;
    }
    default:
      return false;
    }
    if (out) {
      buf_utf8(out, cp);
    }
  }
  return false;
}

// Skips one value of any kind: the fixtures ignore keys they do not know.
static inline bool json_skip(json_t *j) {
  json_ws(j);
  if (j->p >= j->end) {
    return false;
  }
  if (*j->p == '"') {
    return json_string(j, NULL);
  }
  if (*j->p == '{' || *j->p == '[') {
    int depth = 0;
    while (j->p < j->end) {
      char c = *j->p;
      if (c == '"') {
        if (!json_string(j, NULL)) {
          return false;
        }
        continue;
      }
      j->p++;
      if (c == '{' || c == '[') {
        depth++;
      } else if ((c == '}' || c == ']') && --depth == 0) {
        return true;
      }
    }
    return false;
  }
  const char *start = j->p;
  while (j->p < j->end && *j->p != ',' && *j->p != '}' && *j->p != ']' && *j->p != ' ' &&
         *j->p != '\n' && *j->p != '\r' && *j->p != '\t') {
    j->p++;
  }
  return j->p > start;
}

typedef enum { JSON_MISSING, JSON_STRING, JSON_OTHER } json_kind_t;

// Looks up `key` at the top level of the object in `text`. A string value is unescaped into
// `out`; any other value is copied raw. The caller frees `out`.
static inline json_kind_t json_get(const char *text, size_t n, const char *key, buf_t *out) {
  json_t j = {text, text + n};
  json_ws(&j);
  if (j.p >= j.end || *j.p != '{') {
    return JSON_MISSING;
  }
  j.p++;
  for (;;) {
    json_ws(&j);
    if (j.p < j.end && *j.p == '}') {
      return JSON_MISSING;
    }
    buf_t name = {0};
    if (!json_string(&j, &name)) {
      buf_free(&name);
      return JSON_MISSING;
    }
    bool wanted = name.len == strlen(key) && memcmp(name.ptr, key, name.len) == 0;
    buf_free(&name);
    json_ws(&j);
    if (j.p >= j.end || *j.p != ':') {
      return JSON_MISSING;
    }
    j.p++;
    json_ws(&j);
    if (wanted) {
      if (j.p < j.end && *j.p == '"') {
        return json_string(&j, out) ? JSON_STRING : JSON_MISSING;
      }
      const char *start = j.p;
      if (!json_skip(&j)) {
        return JSON_MISSING;
      }
      buf_put(out, start, (size_t)(j.p - start));
      return JSON_OTHER;
    }
    if (!json_skip(&j)) {
      return JSON_MISSING;
    }
    json_ws(&j);
    if (j.p < j.end && *j.p == ',') {
      j.p++;
    }
  }
}

// The string value of `key` as a NUL-terminated string the caller frees, or NULL when the key
// is missing or its value is not a string.
static inline char *json_get_string(const char *text, size_t n, const char *key) {
  buf_t out = {0};
  if (json_get(text, n, key, &out) != JSON_STRING) {
    buf_free(&out);
    return NULL;
  }
  return buf_cstr(&out);
}

// The value of `key` as a non-negative integer; false when it is missing or not one.
static inline bool json_get_u64(const char *text, size_t n, const char *key, uint64_t *value) {
  buf_t out = {0};
  bool ok = json_get(text, n, key, &out) == JSON_OTHER && out.len > 0 && out.len <= 19;
  uint64_t v = 0;
  for (size_t i = 0; ok && i < out.len; i++) {
    ok = out.ptr[i] >= '0' && out.ptr[i] <= '9';
    v = v * 10 + (uint64_t)(out.ptr[i] - '0');
  }
  buf_free(&out);
  if (ok) {
    *value = v;
  }
  return ok;
}

#endif
