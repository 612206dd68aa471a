// sigil-world: tool-plugin
//
// A hostile tool plugin. Each tool does exactly one forbidden or faulty thing, so that a test
// can ask for it and assert that the host contained it: the filesystem outside the grants, a
// guest that never returns (with and without host calls), unbounded memory, oversized output,
// a trap, a look at the environment and config, secrets, and key-value state.
//
// Inputs are flat JSON objects; errors from libc or the host come back as tool errors carrying
// their text, so a test can see what the guest saw.
#include "tool_plugin.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <unistd.h>
#include <wasi/libc-environ.h>

// Declared by <unistd.h> only under _GNU_SOURCE.
extern char **environ;

#include "fixture_tool.h"

#define INVALID SIGIL_PLUGIN_TYPES_TOOL_ERROR_INVALID_INPUT
#define DENIED SIGIL_PLUGIN_TYPES_TOOL_ERROR_DENIED
#define FAILED SIGIL_PLUGIN_TYPES_TOOL_ERROR_FAILED

// Fails with "OPERATION PATH: <strerror(errno)>", the errno as libc reported it.
static bool fail_errno(tool_error_t *err, const char *operation, const char *path) {
  int saved = errno;
  buf_t msg = {0};
  buf_puts(&msg, operation);
  buf_byte(&msg, ' ');
  buf_puts(&msg, path);
  buf_puts(&msg, ": ");
  buf_puts(&msg, strerror(saved));
  bool result = tool_fail(err, FAILED, buf_cstr(&msg));
  buf_free(&msg);
  return result;
}

static char *required_string(const char *in, size_t n, const char *key, tool_error_t *err) {
  char *value = json_get_string(in, n, key);
  if (value == NULL) {
    buf_t msg = {0};
    buf_puts(&msg, "`");
    buf_puts(&msg, key);
    buf_puts(&msg, "` (a string) is required");
    tool_fail(err, INVALID, buf_cstr(&msg));
    buf_free(&msg);
  }
  return value;
}

// read_file {path} -> {"contents": "..."}
static bool read_file(const char *in, size_t n, buf_t *out, tool_error_t *err) {
  char *path = required_string(in, n, "path", err);
  if (path == NULL) {
    return false;
  }
  FILE *f = fopen(path, "rb");
  if (f == NULL) {
    bool r = fail_errno(err, "open", path);
    free(path);
    return r;
  }
  buf_t data = {0};
  char chunk[4096];
  size_t got;
  while ((got = fread(chunk, 1, sizeof chunk, f)) > 0) {
    buf_put(&data, chunk, got);
  }
  if (ferror(f)) {
    bool r = fail_errno(err, "read", path);
    fclose(f);
    buf_free(&data);
    free(path);
    return r;
  }
  fclose(f);
  free(path);
  buf_puts(out, "{\"contents\":");
  buf_json_string(out, data.ptr, data.len);
  buf_byte(out, '}');
  buf_free(&data);
  return true;
}

// write_file {path, text} -> {"written": N}: creates or truncates the file.
static bool write_file(const char *in, size_t n, buf_t *out, tool_error_t *err) {
  char *path = required_string(in, n, "path", err);
  if (path == NULL) {
    return false;
  }
  char *text = required_string(in, n, "text", err);
  if (text == NULL) {
    free(path);
    return false;
  }
  size_t len = strlen(text);
  FILE *f = fopen(path, "wb");
  bool ok = f != NULL;
  if (!ok) {
    fail_errno(err, "create", path);
  } else if (fwrite(text, 1, len, f) != len) {
    ok = false;
    fail_errno(err, "write", path);
    fclose(f);
  } else if (fclose(f) != 0) {
    ok = false;
    fail_errno(err, "close", path);
  }
  free(path);
  free(text);
  if (ok) {
    buf_puts(out, "{\"written\":");
    buf_u64(out, len);
    buf_byte(out, '}');
  }
  return ok;
}

static int compare_names(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

// list_dir {path} -> {"entries": [...]}, sorted, without "." and "..".
static bool list_dir(const char *in, size_t n, buf_t *out, tool_error_t *err) {
  char *path = required_string(in, n, "path", err);
  if (path == NULL) {
    return false;
  }
  DIR *dir = opendir(path);
  if (dir == NULL) {
    bool r = fail_errno(err, "open directory", path);
    free(path);
    return r;
  }
  char **names = NULL;
  size_t count = 0;
  struct dirent *entry;
  while ((entry = readdir(dir)) != NULL) {
    if (strcmp(entry->d_name, ".") == 0 || strcmp(entry->d_name, "..") == 0) {
      continue;
    }
    char **grown = realloc(names, (count + 1) * sizeof *names);
    char *name = strdup(entry->d_name);
    if (grown == NULL || name == NULL) {
      __builtin_trap();
    }
    names = grown;
    names[count++] = name;
  }
  closedir(dir);
  free(path);
  qsort(names, count, sizeof *names, compare_names);
  buf_puts(out, "{\"entries\":[");
  for (size_t i = 0; i < count; i++) {
    if (i > 0) {
      buf_byte(out, ',');
    }
    buf_json_cstr(out, names[i]);
    free(names[i]);
  }
  buf_puts(out, "]}");
  free(names);
  return true;
}

// spin: never returns and makes no host call; only an epoch deadline or fuel stops it.
static bool spin(const char *in, size_t n, buf_t *out, tool_error_t *err) {
  (void)in, (void)n, (void)out, (void)err;
  // volatile: an empty infinite loop may be optimised into something else entirely.
  volatile uint64_t turns = 0;
  for (;;) {
    turns++;
  }
}

// spin_host: never returns, calling the host's `log` on every turn; the deadline must cover
// time spent in host calls too.
static bool spin_host(const char *in, size_t n, buf_t *out, tool_error_t *err) {
  (void)in, (void)n, (void)out, (void)err;
  for (;;) {
    log_message(SIGIL_PLUGIN_LOG_LEVEL_DEBUG, "spinning");
  }
}

// Where `alloc` keeps its chunks, volatile so that the compiler cannot prove them unused and
// drop the allocations.
static void *volatile alloc_head;

// alloc: allocates and touches 1 MiB chunks, never freeing, until memory runs out; then traps.
static bool alloc(const char *in, size_t n, buf_t *out, tool_error_t *err) {
  (void)in, (void)n, (void)out, (void)err;
  const size_t chunk = 1 << 20;
  for (;;) {
    void **block = malloc(chunk);
    if (block == NULL) {
      __builtin_trap();
    }
    memset(block, 0xA5, chunk);
    *block = alloc_head;  // chain the chunks so every one stays reachable
    alloc_head = block;
  }
}

// big_output {bytes} -> a JSON string of exactly `bytes` bytes: `bytes - 2` x's in quotes.
static bool big_output(const char *in, size_t n, buf_t *out, tool_error_t *err) {
  uint64_t bytes;
  if (!json_get_u64(in, n, "bytes", &bytes) || bytes < 2) {
    return tool_fail(err, INVALID, "`bytes` (an integer of at least 2) is required");
  }
  if (bytes > SIZE_MAX / 2) {
    return tool_fail(err, INVALID, "`bytes` is larger than the guest's address space");
  }
  buf_reserve(out, (size_t)bytes);
  out->ptr[0] = '"';
  memset(out->ptr + 1, 'x', (size_t)bytes - 2);
  out->ptr[bytes - 1] = '"';
  out->len = (size_t)bytes;
  return true;
}

// trap: executes `unreachable`.
static bool trap(const char *in, size_t n, buf_t *out, tool_error_t *err) {
  (void)in, (void)n, (void)out, (void)err;
  __builtin_trap();
}

// env -> {"environ": ["NAME=value", ...], "config": "<config.get() as text>", "cwd": "..." | null}
// Everything the guest can see of its environment, so a test can check that no host variable
// or secret leaks in.
static bool env(const char *in, size_t n, buf_t *out, tool_error_t *err) {
  (void)in, (void)n, (void)err;
  // A reactor's libc reads the environment lazily; make sure `environ` is filled.
  __wasilibc_ensure_environ();
  buf_puts(out, "{\"environ\":[");
  for (char **var = environ; var != NULL && *var != NULL; var++) {
    if (var != environ) {
      buf_byte(out, ',');
    }
    buf_json_cstr(out, *var);
  }
  buf_puts(out, "],\"config\":");
  sigil_plugin_config_json_t config;
  sigil_plugin_config_get(&config);
  buf_json_string(out, (const char *)config.ptr, config.len);
  sigil_plugin_config_json_free(&config);
  buf_puts(out, ",\"cwd\":");
  char cwd[1024];
  if (getcwd(cwd, sizeof cwd) != NULL) {
    buf_json_cstr(out, cwd);
  } else {
    buf_puts(out, "null");
  }
  buf_byte(out, '}');
  return true;
}

// secret {name} -> {"reference": "<placeholder>"}, or a `denied` error with the host's text.
static bool secret(const char *in, size_t n, buf_t *out, tool_error_t *err) {
  char *name = required_string(in, n, "name", err);
  if (name == NULL) {
    return false;
  }
  string_t arg = string_view(name);
  string_t reference, failure;
  bool ok = sigil_plugin_secrets_reference(&arg, &reference, &failure);
  free(name);
  if (!ok) {
    tool_fail_with(err, DENIED, "secrets.reference: ", &failure);
    exports_sigil_plugin_tool_json_free(&failure);
    return false;
  }
  buf_puts(out, "{\"reference\":");
  buf_json_string(out, (const char *)reference.ptr, reference.len);
  buf_byte(out, '}');
  exports_sigil_plugin_tool_json_free(&reference);
  return true;
}

// kv {op: get|set|delete, key, value?} -> get: {"value": "..." | null}; set, delete: {"ok": true}.
// A host error comes back as a `denied` error with the host's text.
static bool kv(const char *in, size_t n, buf_t *out, tool_error_t *err) {
  char *op = required_string(in, n, "op", err);
  if (op == NULL) {
    return false;
  }
  char *key = required_string(in, n, "key", err);
  if (key == NULL) {
    free(op);
    return false;
  }
  string_t key_arg = string_view(key);
  string_t failure;
  bool ok;
  if (strcmp(op, "get") == 0) {
    tool_plugin_option_list_u8_t value;
    ok = sigil_plugin_kv_get(&key_arg, &value, &failure);
    if (ok) {
      buf_puts(out, "{\"value\":");
      if (value.is_some) {
        buf_json_string(out, (const char *)value.val.ptr, value.val.len);
      } else {
        buf_puts(out, "null");
      }
      buf_byte(out, '}');
      tool_plugin_option_list_u8_free(&value);
    }
  } else if (strcmp(op, "set") == 0) {
    char *text = required_string(in, n, "value", err);
    if (text == NULL) {
      free(op);
      free(key);
      return false;
    }
    tool_plugin_list_u8_t value = {(uint8_t *)text, strlen(text)};
    ok = sigil_plugin_kv_set(&key_arg, &value, &failure);
    free(text);
  } else if (strcmp(op, "delete") == 0) {
    ok = sigil_plugin_kv_delete(&key_arg, &failure);
  } else {
    free(op);
    free(key);
    return tool_fail(err, INVALID, "`op` must be one of get, set, delete");
  }
  free(op);
  free(key);
  if (!ok) {
    tool_fail_with(err, DENIED, "kv: ", &failure);
    exports_sigil_plugin_tool_json_free(&failure);
    return false;
  }
  if (out->len == 0) {
    buf_puts(out, "{\"ok\":true}");
  }
  return true;
}

// echo: returns its input unchanged.
static bool echo(const char *in, size_t n, buf_t *out, tool_error_t *err) {
  (void)err;
  buf_put(out, in, n);
  return true;
}

#define ANY_OBJECT "{\"type\":\"object\"}"

const tool_t fixture_tools[] = {
    {"read_file", "Reads a file and returns its contents.",
     "{\"type\":\"object\",\"properties\":{\"path\":{\"type\":\"string\"}},\"required\":[\"path\"]}", read_file},
    {"write_file", "Creates or overwrites a file.",
     "{\"type\":\"object\",\"properties\":{\"path\":{\"type\":\"string\"},\"text\":{\"type\":\"string\"}},"
     "\"required\":[\"path\",\"text\"]}",
     write_file},
    {"list_dir", "Lists a directory.",
     "{\"type\":\"object\",\"properties\":{\"path\":{\"type\":\"string\"}},\"required\":[\"path\"]}", list_dir},
    {"spin", "Loops forever without calling the host.", ANY_OBJECT, spin},
    {"spin_host", "Loops forever, calling the host's log on every turn.", ANY_OBJECT, spin_host},
    {"alloc", "Allocates memory without bound until it traps.", ANY_OBJECT, alloc},
    {"big_output", "Returns a JSON string of exactly `bytes` bytes.",
     "{\"type\":\"object\",\"properties\":{\"bytes\":{\"type\":\"integer\",\"minimum\":2}},\"required\":[\"bytes\"]}",
     big_output},
    {"trap", "Traps.", ANY_OBJECT, trap},
    {"env", "Returns the environment, config and working directory the guest can see.", ANY_OBJECT, env},
    {"secret", "Asks the host for a reference to a secret.",
     "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\"}},\"required\":[\"name\"]}", secret},
    {"kv", "Gets, sets or deletes a key in the plugin's key-value state.",
     "{\"type\":\"object\",\"properties\":{\"op\":{\"enum\":[\"get\",\"set\",\"delete\"]},"
     "\"key\":{\"type\":\"string\"},\"value\":{\"type\":\"string\"}},\"required\":[\"op\",\"key\"]}",
     kv},
    {"echo", "Returns its input.", ANY_OBJECT, echo},
};
const size_t fixture_tool_count = sizeof fixture_tools / sizeof fixture_tools[0];
