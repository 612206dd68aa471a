// The `sigil:plugin/tool` exports, shared by every fixture: each fixture lists its tools in
// `fixture_tools` and this file describes them, dispatches `invoke` by tool name, and accepts
// the optional pipeline steps (no fixture declares them).
//
// Include it after the world's generated header (`tool_plugin.h` or `tool_plugin_http.h`).
// It names only types that are the same in every world: the generated `exports_sigil_plugin_*`
// types, whose strings are the world's string type under another name.
#ifndef SIGIL_FIXTURE_TOOL_H
#define SIGIL_FIXTURE_TOOL_H

#include "fixture.h"

typedef exports_sigil_plugin_tool_json_t string_t;
typedef exports_sigil_plugin_tool_tool_error_t tool_error_t;

// Runs one tool on its JSON input. On success writes the JSON output to `out` and returns
// true; on failure fills `err` (see `tool_fail`) and returns false.
typedef bool (*tool_fn)(const char *input, size_t len, buf_t *out, tool_error_t *err);

typedef struct {
  const char *name;
  const char *description;
  const char *input_schema;
  tool_fn run;
} tool_t;

// Defined by each fixture.
extern const tool_t fixture_tools[];
extern const size_t fixture_tool_count;

// Moves the buffer's memory into a string returned to the host; the bindings free it after
// the call.
static inline void string_take(string_t *s, buf_t *b) {
  s->ptr = (uint8_t *)b->ptr;
  s->len = b->len;
  b->ptr = NULL;
  b->len = b->cap = 0;
}

static inline void string_copy(string_t *s, const char *text) {
  buf_t b = {0};
  buf_puts(&b, text);
  string_take(s, &b);
}

// A borrowed view of a C string, for arguments of host calls (the host copies them).
static inline string_t string_view(const char *text) {
  string_t s = {(uint8_t *)text, strlen(text)};
  return s;
}

// Fails the call with a tool error: SIGIL_PLUGIN_TYPES_TOOL_ERROR_{DENIED,INVALID_INPUT,FAILED}.
static inline bool tool_fail(tool_error_t *err, uint8_t tag, const char *message) {
  err->tag = tag;
  switch (tag) {
  case SIGIL_PLUGIN_TYPES_TOOL_ERROR_DENIED: string_copy(&err->val.denied, message); break;
  case SIGIL_PLUGIN_TYPES_TOOL_ERROR_INVALID_INPUT: string_copy(&err->val.invalid_input, message); break;
  default:
    err->tag = SIGIL_PLUGIN_TYPES_TOOL_ERROR_FAILED;
    string_copy(&err->val.failed, message);
    break;
  }
  return false;
}

// Fails with `what` followed by the text of a string the host returned.
static inline bool tool_fail_with(tool_error_t *err, uint8_t tag, const char *what, const string_t *detail) {
  buf_t msg = {0};
  buf_puts(&msg, what);
  buf_put(&msg, detail->ptr, detail->len);
  bool result = tool_fail(err, tag, buf_cstr(&msg));
  buf_free(&msg);
  return result;
}

static inline void log_message(sigil_plugin_log_level_t level, const char *message) {
  string_t text = string_view(message);
  sigil_plugin_log_log(level, &text);
}

void exports_sigil_plugin_tool_describe(exports_sigil_plugin_tool_list_tool_descriptor_t *ret) {
  ret->len = fixture_tool_count;
  ret->ptr = calloc(fixture_tool_count, sizeof *ret->ptr);
  if (ret->ptr == NULL) {
    __builtin_trap();
  }
  for (size_t i = 0; i < fixture_tool_count; i++) {
    exports_sigil_plugin_tool_tool_descriptor_t *d = &ret->ptr[i];
    string_copy(&d->name, fixture_tools[i].name);
    string_copy(&d->description, fixture_tools[i].description);
    string_copy(&d->input_schema, fixture_tools[i].input_schema);
    d->output_schema.is_some = false;
    d->steps.validate_pre = false;
    d->steps.validate_post = false;
    d->steps.rollback = false;
  }
}

bool exports_sigil_plugin_tool_invoke(exports_sigil_plugin_tool_call_info_t *call, string_t *input,
                                      string_t *ret, tool_error_t *err) {
  const tool_t *tool = NULL;
  for (size_t i = 0; i < fixture_tool_count; i++) {
    if (strlen(fixture_tools[i].name) == call->tool.len &&
        memcmp(fixture_tools[i].name, call->tool.ptr, call->tool.len) == 0) {
      tool = &fixture_tools[i];
    }
  }
  bool ok;
  if (tool == NULL) {
    ok = tool_fail_with(err, SIGIL_PLUGIN_TYPES_TOOL_ERROR_INVALID_INPUT, "unknown tool: ", &call->tool);
  } else {
    buf_t out = {0};
    ok = tool->run((const char *)input->ptr, input->len, &out, err);
    if (ok) {
      string_take(ret, &out);
    }
    buf_free(&out);
  }
  exports_sigil_plugin_tool_call_info_free(call);
  exports_sigil_plugin_tool_json_free(input);
  return ok;
}

// The fixtures declare no pipeline steps, so the host never calls these; they accept anyway.
bool exports_sigil_plugin_tool_validate_pre(exports_sigil_plugin_tool_call_info_t *call, string_t *input,
                                            tool_error_t *err) {
  (void)err;
  exports_sigil_plugin_tool_call_info_free(call);
  exports_sigil_plugin_tool_json_free(input);
  return true;
}

bool exports_sigil_plugin_tool_validate_post(exports_sigil_plugin_tool_call_info_t *call, string_t *input,
                                             string_t *output, tool_error_t *err) {
  (void)err;
  exports_sigil_plugin_tool_call_info_free(call);
  exports_sigil_plugin_tool_json_free(input);
  exports_sigil_plugin_tool_json_free(output);
  return true;
}

bool exports_sigil_plugin_tool_rollback(exports_sigil_plugin_tool_call_info_t *call, string_t *input,
                                        string_t *maybe_output, tool_error_t *err) {
  (void)err;
  exports_sigil_plugin_tool_call_info_free(call);
  exports_sigil_plugin_tool_json_free(input);
  if (maybe_output != NULL) {
    exports_sigil_plugin_tool_json_free(maybe_output);
  }
  return true;
}

#endif
