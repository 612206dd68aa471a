//! Compiled WebAssembly components for Sigil's tests and benchmarks: hostile C plugins, each
//! tool doing one forbidden or faulty thing so a test can assert the host contained it, and
//! the C examples of `examples/`.
//!
//! The build script compiles `c/*.c` and `examples/*/*.c` with `sigil-build`; it fails, saying
//! what to install, when the C toolchain is missing (`scripts/install-guest-toolchains`).
//! Every component exports `sigil:plugin/tool@0.1.0`. Tool inputs and outputs are JSON.
//!
//! ```
//! let hostile = std::path::Path::new(sigil_guests::HOSTILE);
//! assert!(hostile.is_file());
//! assert_eq!(sigil_guests::path("hostile"), hostile);
//! ```

#![forbid(unsafe_code)]

use std::path::PathBuf;

include!(concat!(env!("OUT_DIR"), "/names.rs"));

/// The component built from `c/NAME.c` (or, for `examples/NAME`, from that example's C
/// sources): `OUT_DIR/NAME.wasm`. One of [`NAMES`]; any other name gives a path that does
/// not exist.
pub fn path(name: &str) -> PathBuf {
    PathBuf::from(concat!(env!("OUT_DIR"), "/")).join(format!("{name}.wasm"))
}

/// `c/hostile.c`, world `tool-plugin`. Tools (errors from libc or the host come back as tool
/// errors carrying their text):
///
/// | tool | input | does | output |
/// |---|---|---|---|
/// | `read_file` | `{path}` | `fopen` + read | `{"contents": "..."}`; `failed("open PATH: <strerror>")` |
/// | `write_file` | `{path, text}` | create or truncate, write | `{"written": N}`; `failed("create PATH: ...")` |
/// | `list_dir` | `{path}` | `opendir`/`readdir` | `{"entries": [...]}` sorted, no `.`/`..`; `failed("open directory PATH: ...")` |
/// | `spin` | `{}` | loops forever, no host calls | never returns |
/// | `spin_host` | `{}` | loops forever calling `log` (debug, `"spinning"`) | never returns |
/// | `alloc` | `{}` | `malloc`s and touches 1 MiB chunks, never frees | traps when `malloc` fails |
/// | `big_output` | `{bytes}` | | exactly `bytes` bytes of JSON: a string of `bytes - 2` x's |
/// | `trap` | `{}` | `__builtin_trap()` | traps |
/// | `env` | `{}` | reads `environ`, `config.get()`, `getcwd` | `{"environ": ["K=V", ...], "config": "<config JSON as a string>", "cwd": "..." or null}` |
/// | `secret` | `{name}` | `secrets.reference(name)` | `{"reference": "..."}`; `denied("secrets.reference: <host error>")` |
/// | `kv` | `{op: get\|set\|delete, key, value?}` | the `kv` interface | get: `{"value": "..." or null}`; set, delete: `{"ok": true}`; `denied("kv: <host error>")` |
/// | `echo` | any | | its input, unchanged |
///
/// Bytes that are not UTF-8 (in a file, a value) come back as U+FFFD.
pub const HOSTILE: &str = concat!(env!("OUT_DIR"), "/hostile.wasm");

/// `c/hostile_http.c`, world `tool-plugin-http`. One tool, `get`:
/// `{url, header?: "name: value", secret?: NAME}` sends `GET url` through
/// `wasi:http/outgoing-handler` with the optional header and, when `secret` is given,
/// `authorization: Bearer <secrets.reference(NAME)>`; waits for the response and returns
/// `{"status": N, "body": "..."}` with the body cut at 64 KiB. Errors:
/// `failed("sending the request: error-code HTTP-request-denied")` (the error-code's WIT case
/// name), `denied("secrets.reference: <host error>")`, `invalid_input` for a URL that is not
/// `http://` or `https://`.
pub const HOSTILE_HTTP: &str = concat!(env!("OUT_DIR"), "/hostile_http.wasm");

/// `c/hello.c`, world `tool-plugin`: a pure tool `greet` `{name}` →
/// `{"greeting": "hello, NAME"}`, with no host calls; for benchmarks.
pub const HELLO: &str = concat!(env!("OUT_DIR"), "/hello.wasm");

/// `examples/hello-c`: the pure example, tool `greet` `{name}` → `{"greeting": "hello, NAME"}`.
pub const EXAMPLE_HELLO_C: &str = concat!(env!("OUT_DIR"), "/examples/hello-c.wasm");

/// `examples/http-c`: tool `fetch` `{path}` sends `GET <config base_url><path>` with
/// `authorization: Bearer` and the `api_token` secret's reference, and returns
/// `{"status": N, "body": "..."}`.
pub const EXAMPLE_HTTP_C: &str = concat!(env!("OUT_DIR"), "/examples/http-c.wasm");

/// `examples/fs-c`: tools `list_notes` `{}` → `{"notes": [...]}` and `read_note` `{name}` →
/// `{"name": "...", "text": "..."}`, over the granted directory `/srv/notes`.
pub const EXAMPLE_FS_C: &str = concat!(env!("OUT_DIR"), "/examples/fs-c.wasm");
