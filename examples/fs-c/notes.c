// sigil-world: tool-plugin
//
// A filesystem tool in C, limited to one directory:
//   list_notes {}            -> {"notes": ["a.md", "b.txt"]}
//   read_note  {"name": "a.md"} -> {"name": "a.md", "text": "..."}
//
// What it demonstrates: the plugin uses plain libc (opendir, fopen), and the host decides what
// those reach. Its grant `fs.read:/srv/notes/**` becomes the only directory the guest can see,
// read-only; any other path, through `..` or a symlink or not, fails inside libc with an error
// the tool passes back. The name check below is a courtesy for clearer errors, not the
// security boundary.
#include "tool_plugin.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NOTES_DIR "/srv/notes"

typedef exports_sigil_plugin_tool_tool_error_t tool_error_t;

static void set(tool_plugin_string_t *out, const char *text) { tool_plugin_string_dup(out, text); }

static bool fail(tool_error_t *err, uint8_t tag, const char *message) {
  err->tag = tag;
  set(&err->val.failed, message);  // every case of tool-error carries a string in the same place
  return false;
}

// A growable output buffer, returned to the host as the result (the bindings free it).
typedef struct {
  char *ptr;
  size_t len, cap;
} out_t;

static void put(out_t *o, const char *s, size_t n) {
  if (o->len + n > o->cap) {
    o->cap = (o->len + n) * 2 + 64;
    o->ptr = realloc(o->ptr, o->cap);
    if (o->ptr == NULL) {
      __builtin_trap();
    }
  }
  memcpy(o->ptr + o->len, s, n);
  o->len += n;
}

// Appends a JSON string. Non-ASCII bytes become U+FFFD to keep the result valid UTF-8 whatever
// a file holds; a real plugin would pass well-formed UTF-8 through.
static void put_json(out_t *o, const char *s, size_t n) {
  put(o, "\"", 1);
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    char esc[8];
    if (c == '"' || c == '\\') {
      esc[0] = '\\', esc[1] = (char)c;
      put(o, esc, 2);
    } else if (c < 0x20 || c >= 0x7F) {
      put(o, esc, (size_t)snprintf(esc, sizeof esc, c < 0x80 ? "\\u%04x" : "\\ufffd", c));
    } else {
      put(o, (const char *)&c, 1);
    }
  }
  put(o, "\"", 1);
}

// The "name" string from the input, or NULL. The host validated the input against the schema,
// whose pattern already rules out slashes and escapes.
static char *name_from(const char *json, size_t len) {
  const char *end = json + len, *key = "\"name\"";
  for (const char *p = json; p + strlen(key) <= end; p++) {
    if (memcmp(p, key, strlen(key)) != 0) {
      continue;
    }
    for (p += strlen(key); p < end && (*p == ' ' || *p == ':'); p++) {
    }
    if (p >= end || *p != '"') {
      return NULL;
    }
    const char *start = ++p;
    while (p < end && *p != '"') {
      p++;
    }
    return p < end ? strndup(start, (size_t)(p - start)) : NULL;
  }
  return NULL;
}

static bool fail_errno(tool_error_t *err, const char *what) {
  char message[256];
  snprintf(message, sizeof message, "%s: %s", what, strerror(errno));
  return fail(err, SIGIL_PLUGIN_TYPES_TOOL_ERROR_FAILED, message);
}

static bool list_notes(out_t *out, tool_error_t *err) {
  DIR *dir = opendir(NOTES_DIR);
  if (dir == NULL) {
    return fail_errno(err, NOTES_DIR);
  }
  put(out, "{\"notes\":[", 10);
  bool first = true;
  for (struct dirent *e; (e = readdir(dir)) != NULL;) {
    if (e->d_name[0] == '.') {
      continue;  // ".", ".." and hidden files
    }
    if (!first) {
      put(out, ",", 1);
    }
    put_json(out, e->d_name, strlen(e->d_name));
    first = false;
  }
  closedir(dir);
  put(out, "]}", 2);
  return true;
}

static bool read_note(const char *name, out_t *out, tool_error_t *err) {
  if (name[0] == '\0' || name[0] == '.' || strchr(name, '/') != NULL) {
    return fail(err, SIGIL_PLUGIN_TYPES_TOOL_ERROR_INVALID_INPUT, "a note name is a file name in " NOTES_DIR);
  }
  char path[512];
  snprintf(path, sizeof path, NOTES_DIR "/%s", name);
  FILE *f = fopen(path, "rb");
  if (f == NULL) {
    return fail_errno(err, path);
  }
  out_t text = {0};
  char chunk[4096];
  for (size_t n; (n = fread(chunk, 1, sizeof chunk, f)) > 0;) {
    put(&text, chunk, n);
  }
  bool ok = !ferror(f);
  fclose(f);
  if (ok) {
    put(out, "{\"name\":", 8);
    put_json(out, name, strlen(name));
    put(out, ",\"text\":", 8);
    put_json(out, text.ptr, text.len);
    put(out, "}", 1);
  } else {
    fail_errno(err, path);
  }
  free(text.ptr);
  return ok;
}

void exports_sigil_plugin_tool_describe(exports_sigil_plugin_tool_list_tool_descriptor_t *ret) {
  ret->len = 2;
  ret->ptr = calloc(2, sizeof *ret->ptr);
  set(&ret->ptr[0].name, "list_notes");
  set(&ret->ptr[0].description, "Lists the notes in " NOTES_DIR ".");
  set(&ret->ptr[0].input_schema, "{\"type\":\"object\"}");
  set(&ret->ptr[1].name, "read_note");
  set(&ret->ptr[1].description, "Reads one note from " NOTES_DIR ".");
  set(&ret->ptr[1].input_schema,
      "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\",\"pattern\":\"^[^/\\\\\\\\]+$\"}},"
      "\"required\":[\"name\"]}");
}

bool exports_sigil_plugin_tool_invoke(exports_sigil_plugin_tool_call_info_t *call,
                                      exports_sigil_plugin_tool_json_t *input, exports_sigil_plugin_tool_json_t *ret,
                                      tool_error_t *err) {
  out_t out = {0};
  bool ok;
  if (call->tool.len == strlen("list_notes") && memcmp(call->tool.ptr, "list_notes", call->tool.len) == 0) {
    ok = list_notes(&out, err);
  } else if (call->tool.len == strlen("read_note") && memcmp(call->tool.ptr, "read_note", call->tool.len) == 0) {
    char *name = name_from((const char *)input->ptr, input->len);
    ok = name ? read_note(name, &out, err)
              : fail(err, SIGIL_PLUGIN_TYPES_TOOL_ERROR_INVALID_INPUT, "`name` (a string) is required");
    free(name);
  } else {
    ok = fail(err, SIGIL_PLUGIN_TYPES_TOOL_ERROR_INVALID_INPUT, "unknown tool");
  }
  exports_sigil_plugin_tool_call_info_free(call);
  exports_sigil_plugin_tool_json_free(input);
  if (ok) {
    ret->ptr = (uint8_t *)out.ptr;
    ret->len = out.len;
  } else {
    free(out.ptr);
  }
  return ok;
}

// No pipeline steps are declared, so the host never calls these.
bool exports_sigil_plugin_tool_validate_pre(exports_sigil_plugin_tool_call_info_t *call,
                                            exports_sigil_plugin_tool_json_t *input, tool_error_t *err) {
  (void)call, (void)input, (void)err;
  return true;
}

bool exports_sigil_plugin_tool_validate_post(exports_sigil_plugin_tool_call_info_t *call,
                                             exports_sigil_plugin_tool_json_t *input,
                                             exports_sigil_plugin_tool_json_t *output, tool_error_t *err) {
  (void)call, (void)input, (void)output, (void)err;
  return true;
}

bool exports_sigil_plugin_tool_rollback(exports_sigil_plugin_tool_call_info_t *call,
                                        exports_sigil_plugin_tool_json_t *input,
                                        exports_sigil_plugin_tool_json_t *maybe_output, tool_error_t *err) {
  (void)call, (void)input, (void)maybe_output, (void)err;
  return true;
}
