// sigil-world: tool-plugin-http
//
// An HTTP tool plugin: one tool, `get`, that sends a GET through `wasi:http` to any URL it is
// given. Tests point it at hosts and ports the plugin was not granted, and at granted ones with
// a secret, to check the host's egress checks and secret injection; it is also the HTTP
// example for the test suite.
//
// get {url, header?: "name: value", secret?: name}
//   -> {"status": N, "body": "..."} with the body cut at 64 KiB,
//   or a `failed` error naming the wasi:http error-code (`HTTP-request-denied`, ...),
//   or a `denied` error when the host refuses the secret reference.
#include "tool_plugin_http.h"

#include "fixture_tool.h"

#define INVALID SIGIL_PLUGIN_TYPES_TOOL_ERROR_INVALID_INPUT
#define DENIED SIGIL_PLUGIN_TYPES_TOOL_ERROR_DENIED
#define FAILED SIGIL_PLUGIN_TYPES_TOOL_ERROR_FAILED

#define BODY_LIMIT (64 * 1024)

// The cases of wasi:http's `error-code`, in declaration order.
static const char *const ERROR_CODES[] = {
    "DNS-timeout", "DNS-error", "destination-not-found", "destination-unavailable",
    "destination-IP-prohibited", "destination-IP-unroutable", "connection-refused",
    "connection-terminated", "connection-timeout", "connection-read-timeout",
    "connection-write-timeout", "connection-limit-reached", "TLS-protocol-error",
    "TLS-certificate-error", "TLS-alert-received", "HTTP-request-denied",
    "HTTP-request-length-required", "HTTP-request-body-size", "HTTP-request-method-invalid",
    "HTTP-request-URI-invalid", "HTTP-request-URI-too-long", "HTTP-request-header-section-size",
    "HTTP-request-header-size", "HTTP-request-trailer-section-size", "HTTP-request-trailer-size",
    "HTTP-response-incomplete", "HTTP-response-header-section-size", "HTTP-response-header-size",
    "HTTP-response-body-size", "HTTP-response-trailer-section-size", "HTTP-response-trailer-size",
    "HTTP-response-transfer-coding", "HTTP-response-content-coding", "HTTP-response-timeout",
    "HTTP-upgrade-failed", "HTTP-protocol-error", "loop-detected", "configuration-error",
    "internal-error",
};

// Fails with "WHAT: error-code NAME[: detail]" and frees the error code.
static bool fail_code(tool_error_t *err, const char *what, wasi_http_types_error_code_t *code) {
  buf_t msg = {0};
  buf_puts(&msg, what);
  buf_puts(&msg, ": error-code ");
  size_t count = sizeof ERROR_CODES / sizeof ERROR_CODES[0];
  if (code->tag < count) {
    buf_puts(&msg, ERROR_CODES[code->tag]);
  } else {
    buf_puts(&msg, "unknown case ");
    buf_u64(&msg, code->tag);
  }
  if (code->tag == WASI_HTTP_TYPES_ERROR_CODE_INTERNAL_ERROR && code->val.internal_error.is_some) {
    buf_puts(&msg, ": ");
    buf_put(&msg, code->val.internal_error.val.ptr, code->val.internal_error.val.len);
  }
  wasi_http_types_error_code_free(code);
  bool result = tool_fail(err, FAILED, buf_cstr(&msg));
  buf_free(&msg);
  return result;
}

static bool add_header(wasi_http_types_borrow_fields_t headers, const char *name, const char *value,
                       tool_error_t *err) {
  static const char *const HEADER_ERRORS[] = {"invalid-syntax", "forbidden", "immutable"};
  wasi_http_types_field_name_t field_name = string_view(name);
  wasi_http_types_field_value_t field_value = {(uint8_t *)value, strlen(value)};
  wasi_http_types_header_error_t header_error;
  if (wasi_http_types_method_fields_append(headers, &field_name, &field_value, &header_error)) {
    return true;
  }
  buf_t msg = {0};
  buf_puts(&msg, "header ");
  buf_puts(&msg, name);
  buf_puts(&msg, ": ");
  buf_puts(&msg, header_error.tag < 3 ? HEADER_ERRORS[header_error.tag] : "rejected");
  tool_fail(err, INVALID, buf_cstr(&msg));
  buf_free(&msg);
  return false;
}

static char *trim(char *s) {
  while (*s == ' ' || *s == '\t') {
    s++;
  }
  size_t len = strlen(s);
  while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t')) {
    s[--len] = '\0';
  }
  return s;
}

// Reads the response body, up to BODY_LIMIT bytes, into `body`.
static bool read_body(wasi_http_types_borrow_incoming_response_t response, buf_t *body, tool_error_t *err) {
  wasi_http_types_own_incoming_body_t incoming;
  if (!wasi_http_types_method_incoming_response_consume(response, &incoming)) {
    return tool_fail(err, FAILED, "response body already taken");
  }
  wasi_http_types_own_input_stream_t stream;
  if (!wasi_http_types_method_incoming_body_stream(wasi_http_types_borrow_incoming_body(incoming), &stream)) {
    wasi_http_types_incoming_body_drop_own(incoming);
    return tool_fail(err, FAILED, "response body stream already taken");
  }
  bool ok = true;
  while (body->len < BODY_LIMIT) {
    tool_plugin_http_list_u8_t chunk;
    wasi_io_streams_stream_error_t stream_error;
    if (!wasi_io_streams_method_input_stream_blocking_read(wasi_io_streams_borrow_input_stream(stream),
                                                           BODY_LIMIT - body->len, &chunk, &stream_error)) {
      if (stream_error.tag == WASI_IO_STREAMS_STREAM_ERROR_LAST_OPERATION_FAILED) {
        wasi_io_error_own_error_t io_error = stream_error.val.last_operation_failed;
        wasi_http_types_error_code_t code;
        if (wasi_http_types_http_error_code(wasi_io_error_borrow_error(io_error), &code)) {
          fail_code(err, "reading the response body", &code);
        } else {
          tool_fail(err, FAILED, "reading the response body failed");
        }
        wasi_io_error_error_drop_own(io_error);
        ok = false;
      }
      break;  // closed: the whole body has been read
    }
    buf_put(body, chunk.ptr, chunk.len);
    tool_plugin_http_list_u8_free(&chunk);
  }
  // The stream is a child of the body and must go first.
  wasi_io_streams_input_stream_drop_own(stream);
  wasi_http_types_future_trailers_drop_own(wasi_http_types_static_incoming_body_finish(incoming));
  return ok;
}

static bool get(const char *in, size_t n, buf_t *out, tool_error_t *err) {
  char *url = json_get_string(in, n, "url");
  if (url == NULL) {
    return tool_fail(err, INVALID, "`url` (a string) is required");
  }
  char *header = json_get_string(in, n, "header");
  char *secret = json_get_string(in, n, "secret");
  bool ok = false;
  buf_t authority = {0}, path = {0}, authorization = {0}, body = {0};

  wasi_http_types_scheme_t scheme = {0};
  const char *rest;
  if (strncmp(url, "http://", 7) == 0) {
    scheme.tag = WASI_HTTP_TYPES_SCHEME_HTTP, rest = url + 7;
  } else if (strncmp(url, "https://", 8) == 0) {
    scheme.tag = WASI_HTTP_TYPES_SCHEME_HTTPS, rest = url + 8;
  } else {
    tool_fail(err, INVALID, "`url` must start with http:// or https://");
    goto done;
  }
  size_t authority_len = strcspn(rest, "/?#");
  if (authority_len == 0) {
    tool_fail(err, INVALID, "`url` has no host");
    goto done;
  }
  buf_put(&authority, rest, authority_len);
  rest += authority_len;
  if (*rest != '/') {
    buf_byte(&path, '/');
  }
  buf_put(&path, rest, strcspn(rest, "#"));

  wasi_http_types_own_fields_t headers = wasi_http_types_constructor_fields();
  wasi_http_types_borrow_fields_t headers_ref = wasi_http_types_borrow_fields(headers);
  if (header != NULL) {
    char *colon = strchr(header, ':');
    if (colon == NULL) {
      wasi_http_types_fields_drop_own(headers);
      tool_fail(err, INVALID, "`header` must look like `name: value`");
      goto done;
    }
    *colon = '\0';
    if (!add_header(headers_ref, trim(header), trim(colon + 1), err)) {
      wasi_http_types_fields_drop_own(headers);
      goto done;
    }
  }
  if (secret != NULL) {
    // The plugin only ever holds a placeholder; the host swaps in the value on the way out,
    // and only for destinations the plugin was granted.
    string_t name = string_view(secret), reference, failure;
    if (!sigil_plugin_secrets_reference(&name, &reference, &failure)) {
      wasi_http_types_fields_drop_own(headers);
      tool_fail_with(err, DENIED, "secrets.reference: ", &failure);
      exports_sigil_plugin_tool_json_free(&failure);
      goto done;
    }
    buf_puts(&authorization, "Bearer ");
    buf_put(&authorization, reference.ptr, reference.len);
    exports_sigil_plugin_tool_json_free(&reference);
    if (!add_header(headers_ref, "authorization", buf_cstr(&authorization), err)) {
      wasi_http_types_fields_drop_own(headers);
      goto done;
    }
  }

  // The request takes the headers.
  wasi_http_types_own_outgoing_request_t request = wasi_http_types_constructor_outgoing_request(headers);
  wasi_http_types_borrow_outgoing_request_t request_ref = wasi_http_types_borrow_outgoing_request(request);
  wasi_http_types_method_t method = {.tag = WASI_HTTP_TYPES_METHOD_GET};
  string_t authority_text = {(uint8_t *)authority.ptr, authority.len};
  string_t path_text = {(uint8_t *)path.ptr, path.len};
  if (!wasi_http_types_method_outgoing_request_set_method(request_ref, &method) ||
      !wasi_http_types_method_outgoing_request_set_scheme(request_ref, &scheme) ||
      !wasi_http_types_method_outgoing_request_set_authority(request_ref, &authority_text) ||
      !wasi_http_types_method_outgoing_request_set_path_with_query(request_ref, &path_text)) {
    wasi_http_types_outgoing_request_drop_own(request);
    tool_fail(err, INVALID, "`url` is not a valid request target");
    goto done;
  }

  // The handler takes the request.
  wasi_http_outgoing_handler_own_future_incoming_response_t future;
  wasi_http_outgoing_handler_error_code_t code;
  if (!wasi_http_outgoing_handler_handle(request, NULL, &future, &code)) {
    fail_code(err, "sending the request", &code);
    goto done;
  }
  wasi_http_types_borrow_future_incoming_response_t future_ref =
      wasi_http_types_borrow_future_incoming_response(future);
  wasi_http_types_own_pollable_t ready = wasi_http_types_method_future_incoming_response_subscribe(future_ref);
  wasi_io_poll_method_pollable_block(wasi_io_poll_borrow_pollable(ready));
  wasi_io_poll_pollable_drop_own(ready);

  wasi_http_types_result_result_own_incoming_response_error_code_void_t result;
  if (!wasi_http_types_method_future_incoming_response_get(future_ref, &result)) {
    tool_fail(err, FAILED, "the response was not ready after waiting for it");
  } else if (result.is_err) {
    tool_fail(err, FAILED, "the response was already taken");
  } else if (result.val.ok.is_err) {
    fail_code(err, "sending the request", &result.val.ok.val.err);
  } else {
    wasi_http_types_own_incoming_response_t response = result.val.ok.val.ok;
    wasi_http_types_borrow_incoming_response_t response_ref = wasi_http_types_borrow_incoming_response(response);
    wasi_http_types_status_code_t status = wasi_http_types_method_incoming_response_status(response_ref);
    if (read_body(response_ref, &body, err)) {
      buf_puts(out, "{\"status\":");
      buf_u64(out, status);
      buf_puts(out, ",\"body\":");
      buf_json_string(out, body.ptr, body.len);
      buf_byte(out, '}');
      ok = true;
    }
    wasi_http_types_incoming_response_drop_own(response);
  }
  wasi_http_types_future_incoming_response_drop_own(future);

done:
  buf_free(&authority);
  buf_free(&path);
  buf_free(&authorization);
  buf_free(&body);
  free(url);
  free(header);
  free(secret);
  return ok;
}

const tool_t fixture_tools[] = {
    {"get", "Sends an HTTP GET and returns the status and the first 64 KiB of the body.",
     "{\"type\":\"object\",\"properties\":{\"url\":{\"type\":\"string\"},\"header\":{\"type\":\"string\"},"
     "\"secret\":{\"type\":\"string\"}},\"required\":[\"url\"]}",
     get},
};
const size_t fixture_tool_count = sizeof fixture_tools / sizeof fixture_tools[0];
