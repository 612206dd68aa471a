// sigil-world: tool-plugin
//
// A pure Sigil tool in C: `greet` {"name": "Ada"} -> {"greeting": "hello, Ada"}.
//
// It asks for nothing and the host grants it nothing: no files, no network, no secrets. The
// line above tells `sigil plugin build` which world to generate bindings for; the bindings
// header below is generated from Sigil's WIT at build time.
#include "tool_plugin.h"

#include <stdlib.h>
#include <string.h>

// Finds the string value of "name" in the input. The host has already checked the input
// against the schema in `describe`, so a plain scan is enough here; a real plugin with richer
// input would use a JSON library. Returns a malloc'd string, or NULL.
static char *name_from(const char *json, size_t len) {
  const char *key = "\"name\"";
  const char *end = json + len;
  for (const char *p = json; p + strlen(key) <= end; p++) {
    if (memcmp(p, key, strlen(key)) != 0) {
      continue;
    }
    p += strlen(key);
    while (p < end && (*p == ' ' || *p == ':')) {
      p++;
    }
    if (p >= end || *p != '"') {
      return NULL;
    }
    const char *start = ++p;
    while (p < end && *p != '"') {
      p += (*p == '\\') ? 2 : 1;  // keep escapes as they are: they are valid JSON on the way out
    }
    if (p >= end) {
      return NULL;  // no closing quote
    }
    char *name = malloc((size_t)(p - start) + 1);
    if (name == NULL) {
      return NULL;
    }
    memcpy(name, start, (size_t)(p - start));
    name[p - start] = '\0';
    return name;
  }
  return NULL;
}

// Strings returned to the host must come from malloc: the generated bindings free them once
// the host has copied them out.
static void set(tool_plugin_string_t *out, const char *text) { tool_plugin_string_dup(out, text); }

void exports_sigil_plugin_tool_describe(exports_sigil_plugin_tool_list_tool_descriptor_t *ret) {
  ret->len = 1;
  ret->ptr = calloc(1, sizeof *ret->ptr);
  set(&ret->ptr[0].name, "greet");
  set(&ret->ptr[0].description, "Greets someone by name.");
  set(&ret->ptr[0].input_schema,
      "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\"}},\"required\":[\"name\"]}");
  // Declaring the output schema lets the host check every result before anyone sees it.
  ret->ptr[0].output_schema.is_some = true;
  set(&ret->ptr[0].output_schema.val,
      "{\"type\":\"object\",\"properties\":{\"greeting\":{\"type\":\"string\"}},\"required\":[\"greeting\"]}");
}

bool exports_sigil_plugin_tool_invoke(exports_sigil_plugin_tool_call_info_t *call, exports_sigil_plugin_tool_json_t *input,
                                      exports_sigil_plugin_tool_json_t *ret, exports_sigil_plugin_tool_tool_error_t *err) {
  char *name = name_from((const char *)input->ptr, input->len);
  exports_sigil_plugin_tool_call_info_free(call);
  exports_sigil_plugin_tool_json_free(input);
  if (name == NULL) {
    err->tag = SIGIL_PLUGIN_TYPES_TOOL_ERROR_INVALID_INPUT;
    set(&err->val.invalid_input, "`name` (a string) is required");
    return false;
  }
  const char *prefix = "{\"greeting\":\"hello, ";
  char *json = malloc(strlen(prefix) + strlen(name) + 3);
  if (json == NULL) {
    __builtin_trap();  // out of memory: let the host see a fault rather than a wrong answer
  }
  strcpy(json, prefix);
  strcat(json, name);
  strcat(json, "\"}");
  free(name);
  ret->ptr = (uint8_t *)json;
  ret->len = strlen(json);
  return true;
}

// This plugin declares no pipeline steps, so the host never calls these; they accept.
bool exports_sigil_plugin_tool_validate_pre(exports_sigil_plugin_tool_call_info_t *call, exports_sigil_plugin_tool_json_t *input,
                                            exports_sigil_plugin_tool_tool_error_t *err) {
  (void)call, (void)input, (void)err;
  return true;
}

bool exports_sigil_plugin_tool_validate_post(exports_sigil_plugin_tool_call_info_t *call, exports_sigil_plugin_tool_json_t *input,
                                             exports_sigil_plugin_tool_json_t *output, exports_sigil_plugin_tool_tool_error_t *err) {
  (void)call, (void)input, (void)output, (void)err;
  return true;
}

bool exports_sigil_plugin_tool_rollback(exports_sigil_plugin_tool_call_info_t *call, exports_sigil_plugin_tool_json_t *input,
                                        exports_sigil_plugin_tool_json_t *maybe_output, exports_sigil_plugin_tool_tool_error_t *err) {
  (void)call, (void)input, (void)maybe_output, (void)err;
  return true;
}
