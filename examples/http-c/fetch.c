// sigil-world: tool-plugin-http
//
// An HTTP tool in C: `fetch` {"path": "/status"} sends `GET <base_url><path>` to the service
// the operator configured, authenticated with the `api_token` secret, and returns
// {"status": 200, "body": "..."}.
//
// What it demonstrates:
// - Outgoing HTTP goes through `wasi:http`, and only there: the plugin has no sockets. The host
//   checks every request against the plugin's `net.connect` grants before it leaves.
// - The plugin never holds the secret. `secrets.reference` returns a placeholder; the host
//   swaps in the value while sending, and only to a destination the plugin was granted.
#include "tool_plugin_http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BODY_LIMIT (64 * 1024)

typedef exports_sigil_plugin_tool_tool_error_t tool_error_t;

static void set(tool_plugin_http_string_t *out, const char *text) { tool_plugin_http_string_dup(out, text); }

static bool fail(tool_error_t *err, uint8_t tag, const char *message) {
  err->tag = tag;
  set(&err->val.failed, message);  // every case of tool-error carries a string in the same place
  return false;
}

// The string value of `key` in a flat JSON object, or NULL. The host validated the input and
// the config against their schemas; values with escapes are not expected in either here.
static char *string_field(const char *json, size_t len, const char *key) {
  char quoted[64];
  snprintf(quoted, sizeof quoted, "\"%s\"", key);
  const char *end = json + len;
  for (const char *p = json; p + strlen(quoted) <= end; p++) {
    if (memcmp(p, quoted, strlen(quoted)) != 0) {
      continue;
    }
    p += strlen(quoted);
    while (p < end && (*p == ' ' || *p == ':')) {
      p++;
    }
    if (p >= end || *p != '"') {
      return NULL;
    }
    const char *start = ++p;
    while (p < end && *p != '"' && *p != '\\') {
      p++;
    }
    if (p >= end || *p != '"') {
      return NULL;
    }
    return strndup(start, (size_t)(p - start));
  }
  return NULL;
}

// Sends the GET and reads the status and up to BODY_LIMIT bytes of body.
static bool get(const char *url, const char *authorization, int *status, char *body, size_t *body_len,
                tool_error_t *err) {
  // Split "http://host:port/path" into the parts wasi:http wants.
  wasi_http_types_scheme_t scheme = {.tag = WASI_HTTP_TYPES_SCHEME_HTTP};
  const char *rest = url;
  if (strncmp(url, "http://", 7) == 0) {
    rest = url + 7;
  } else if (strncmp(url, "https://", 8) == 0) {
    scheme.tag = WASI_HTTP_TYPES_SCHEME_HTTPS;
    rest = url + 8;
  } else {
    return fail(err, SIGIL_PLUGIN_TYPES_TOOL_ERROR_INVALID_INPUT, "base_url must start with http:// or https://");
  }
  size_t host_len = strcspn(rest, "/");
  tool_plugin_http_string_t authority = {(uint8_t *)rest, host_len};
  tool_plugin_http_string_t path = {(uint8_t *)rest + host_len, strlen(rest + host_len)};

  wasi_http_types_own_fields_t headers = wasi_http_types_constructor_fields();
  wasi_http_types_field_name_t name = {(uint8_t *)"authorization", strlen("authorization")};
  wasi_http_types_field_value_t value = {(uint8_t *)authorization, strlen(authorization)};
  wasi_http_types_header_error_t header_error;
  if (!wasi_http_types_method_fields_append(wasi_http_types_borrow_fields(headers), &name, &value, &header_error)) {
    wasi_http_types_fields_drop_own(headers);
    return fail(err, SIGIL_PLUGIN_TYPES_TOOL_ERROR_FAILED, "cannot set the authorization header");
  }

  wasi_http_types_own_outgoing_request_t request = wasi_http_types_constructor_outgoing_request(headers);
  wasi_http_types_borrow_outgoing_request_t r = wasi_http_types_borrow_outgoing_request(request);
  wasi_http_types_method_t method = {.tag = WASI_HTTP_TYPES_METHOD_GET};
  if (!wasi_http_types_method_outgoing_request_set_method(r, &method) ||
      !wasi_http_types_method_outgoing_request_set_scheme(r, &scheme) ||
      !wasi_http_types_method_outgoing_request_set_authority(r, &authority) ||
      !wasi_http_types_method_outgoing_request_set_path_with_query(r, path.len ? &path : NULL)) {
    wasi_http_types_outgoing_request_drop_own(request);
    return fail(err, SIGIL_PLUGIN_TYPES_TOOL_ERROR_INVALID_INPUT, "not a valid URL");
  }

  // A denied destination comes back here, as error-code HTTP-request-denied.
  wasi_http_outgoing_handler_own_future_incoming_response_t future;
  wasi_http_outgoing_handler_error_code_t code;
  if (!wasi_http_outgoing_handler_handle(request, NULL, &future, &code)) {
    char message[96];
    if (code.tag == WASI_HTTP_TYPES_ERROR_CODE_HTTP_REQUEST_DENIED) {
      snprintf(message, sizeof message, "the host refused the request: HTTP-request-denied");
    } else {
      snprintf(message, sizeof message, "the request failed: wasi:http error-code case %d", code.tag);
    }
    wasi_http_types_error_code_free(&code);
    return fail(err, SIGIL_PLUGIN_TYPES_TOOL_ERROR_FAILED, message);
  }

  // Wait for the response head.
  wasi_http_types_borrow_future_incoming_response_t f = wasi_http_types_borrow_future_incoming_response(future);
  wasi_http_types_own_pollable_t ready = wasi_http_types_method_future_incoming_response_subscribe(f);
  wasi_io_poll_method_pollable_block(wasi_io_poll_borrow_pollable(ready));
  wasi_io_poll_pollable_drop_own(ready);
  wasi_http_types_result_result_own_incoming_response_error_code_void_t result;
  bool got = wasi_http_types_method_future_incoming_response_get(f, &result);
  wasi_http_types_future_incoming_response_drop_own(future);
  if (!got || result.is_err || result.val.ok.is_err) {
    if (got && !result.is_err) {
      wasi_http_types_error_code_free(&result.val.ok.val.err);
    }
    return fail(err, SIGIL_PLUGIN_TYPES_TOOL_ERROR_FAILED, "the request failed");
  }
  wasi_http_types_own_incoming_response_t response = result.val.ok.val.ok;
  wasi_http_types_borrow_incoming_response_t resp = wasi_http_types_borrow_incoming_response(response);
  *status = wasi_http_types_method_incoming_response_status(resp);

  // Read the body until the stream closes or the buffer is full.
  wasi_http_types_own_incoming_body_t incoming;
  wasi_http_types_own_input_stream_t stream;
  *body_len = 0;
  if (wasi_http_types_method_incoming_response_consume(resp, &incoming)) {
    if (wasi_http_types_method_incoming_body_stream(wasi_http_types_borrow_incoming_body(incoming), &stream)) {
      tool_plugin_http_list_u8_t chunk;
      wasi_io_streams_stream_error_t stream_error;
      while (*body_len < BODY_LIMIT &&
             wasi_io_streams_method_input_stream_blocking_read(wasi_io_streams_borrow_input_stream(stream),
                                                               BODY_LIMIT - *body_len, &chunk, &stream_error)) {
        memcpy(body + *body_len, chunk.ptr, chunk.len);
        *body_len += chunk.len;
        tool_plugin_http_list_u8_free(&chunk);
      }
      wasi_io_streams_input_stream_drop_own(stream);  // a child of the body: drop it first
    }
    wasi_http_types_future_trailers_drop_own(wasi_http_types_static_incoming_body_finish(incoming));
  }
  wasi_http_types_incoming_response_drop_own(response);
  return true;
}

// Appends `s` to `out` as a JSON string body. Bytes outside printable ASCII are escaped or
// replaced, which keeps the result valid JSON and valid UTF-8 whatever the server sent.
static size_t json_escape(char *out, const char *s, size_t n) {
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '"' || c == '\\') {
      out[o++] = '\\', out[o++] = (char)c;
    } else if (c < 0x20 || c >= 0x7F) {
      o += (size_t)sprintf(out + o, c < 0x80 ? "\\u%04x" : "\\ufffd", c);
    } else {
      out[o++] = (char)c;
    }
  }
  return o;
}

void exports_sigil_plugin_tool_describe(exports_sigil_plugin_tool_list_tool_descriptor_t *ret) {
  ret->len = 1;
  ret->ptr = calloc(1, sizeof *ret->ptr);
  set(&ret->ptr[0].name, "fetch");
  set(&ret->ptr[0].description, "Fetches a path from the configured service, authenticated.");
  set(&ret->ptr[0].input_schema,
      "{\"type\":\"object\",\"properties\":{\"path\":{\"type\":\"string\",\"pattern\":\"^/\"}},\"required\":[\"path\"]}");
}

bool exports_sigil_plugin_tool_invoke(exports_sigil_plugin_tool_call_info_t *call,
                                      exports_sigil_plugin_tool_json_t *input, exports_sigil_plugin_tool_json_t *ret,
                                      tool_error_t *err) {
  char *path = string_field((const char *)input->ptr, input->len, "path");
  exports_sigil_plugin_tool_call_info_free(call);
  exports_sigil_plugin_tool_json_free(input);
  if (path == NULL) {
    return fail(err, SIGIL_PLUGIN_TYPES_TOOL_ERROR_INVALID_INPUT, "`path` (a string) is required");
  }

  // Where to send it is the operator's choice, from the config the host validated.
  sigil_plugin_config_json_t config;
  sigil_plugin_config_get(&config);
  char *base_url = string_field((const char *)config.ptr, config.len, "base_url");
  sigil_plugin_config_json_free(&config);
  if (base_url == NULL) {
    free(path);
    return fail(err, SIGIL_PLUGIN_TYPES_TOOL_ERROR_FAILED, "config has no base_url");
  }

  // A placeholder for the token, not the token.
  tool_plugin_http_string_t secret_name = {(uint8_t *)"api_token", strlen("api_token")};
  tool_plugin_http_string_t reference, refusal;
  if (!sigil_plugin_secrets_reference(&secret_name, &reference, &refusal)) {
    free(path), free(base_url);
    err->tag = SIGIL_PLUGIN_TYPES_TOOL_ERROR_DENIED;
    err->val.denied = refusal;  // the host's message, handed back as it is
    return false;
  }

  size_t url_len = strlen(base_url) + strlen(path) + 1;
  char *url = malloc(url_len);
  char *authorization = malloc(reference.len + sizeof "Bearer ");
  char *body = malloc(BODY_LIMIT);
  char *json = malloc(6 * BODY_LIMIT + 64);  // worst case: every byte escaped as \uXXXX
  if (url == NULL || authorization == NULL || body == NULL || json == NULL) {
    __builtin_trap();
  }
  snprintf(url, url_len, "%s%s", base_url, path);
  snprintf(authorization, reference.len + sizeof "Bearer ", "Bearer %.*s", (int)reference.len, (char *)reference.ptr);
  tool_plugin_http_string_free(&reference);
  free(path), free(base_url);

  int status = 0;
  size_t body_len = 0;
  bool ok = get(url, authorization, &status, body, &body_len, err);
  if (ok) {
    size_t n = (size_t)sprintf(json, "{\"status\":%d,\"body\":\"", status);
    n += json_escape(json + n, body, body_len);
    n += (size_t)sprintf(json + n, "\"}");
    ret->ptr = (uint8_t *)json;
    ret->len = n;
  } else {
    free(json);
  }
  free(url), free(authorization), free(body);
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
