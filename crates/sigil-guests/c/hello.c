// sigil-world: tool-plugin
//
// The smallest useful tool: pure computation, no host calls. Benchmarks call it to measure
// the cost of the boundary itself.
#include "tool_plugin.h"

#include "fixture_tool.h"

// greet {name} -> {"greeting": "hello, NAME"}
static bool greet(const char *in, size_t n, buf_t *out, tool_error_t *err) {
  char *name = json_get_string(in, n, "name");
  if (name == NULL) {
    return tool_fail(err, SIGIL_PLUGIN_TYPES_TOOL_ERROR_INVALID_INPUT, "`name` (a string) is required");
  }
  buf_t greeting = {0};
  buf_puts(&greeting, "hello, ");
  buf_puts(&greeting, name);
  free(name);
  buf_puts(out, "{\"greeting\":");
  buf_json_string(out, greeting.ptr, greeting.len);
  buf_byte(out, '}');
  buf_free(&greeting);
  return true;
}

const tool_t fixture_tools[] = {
    {"greet", "Greets someone by name.",
     "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\"}},\"required\":[\"name\"]}", greet},
};
const size_t fixture_tool_count = sizeof fixture_tools / sizeof fixture_tools[0];
