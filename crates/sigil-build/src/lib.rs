//! Builds Sigil plugins from source into WebAssembly components, with toolchains that come
//! from Debian's packages and crates.io alone.
//!
//! C guests: bindings come from `wit-bindgen-c` used as a library, Debian's clang compiles
//! them for `wasm32-wasi` against the `wasi-libc` sysroot, and `wit-component` wraps the core
//! module into a component with the WASI preview1 reactor adapter. The machine needs
//! `apt-get install -y clang lld wasi-libc libclang-rt-14-dev-wasm32` ([`INSTALL_HINT`]);
//! every toolchain error says so.
//!
//! ```
//! use sigil_build::{CBuild, build_c, inspect_component};
//!
//! let dir = tempfile::tempdir()?;
//! let source = dir.path().join("hi.c");
//! std::fs::write(&source, r#"
//!     #include "tool_plugin.h"
//!     #include <stdlib.h>
//!
//!     static void set(tool_plugin_string_t *s, const char *text) {
//!         tool_plugin_string_dup(s, text);
//!     }
//!     void exports_sigil_plugin_tool_describe(exports_sigil_plugin_tool_list_tool_descriptor_t *ret) {
//!         ret->len = 1;
//!         ret->ptr = calloc(1, sizeof *ret->ptr);
//!         set(&ret->ptr[0].name, "hi");
//!         set(&ret->ptr[0].description, "says hi");
//!         set(&ret->ptr[0].input_schema, "{\"type\":\"object\"}");
//!     }
//!     bool exports_sigil_plugin_tool_invoke(exports_sigil_plugin_tool_call_info_t *call,
//!             tool_plugin_string_t *input, tool_plugin_string_t *ret,
//!             exports_sigil_plugin_tool_tool_error_t *err) {
//!         set(ret, "\"hi\"");
//!         return true;
//!     }
//!     bool exports_sigil_plugin_tool_validate_pre(exports_sigil_plugin_tool_call_info_t *call,
//!             tool_plugin_string_t *input, exports_sigil_plugin_tool_tool_error_t *err) {
//!         return true;
//!     }
//!     bool exports_sigil_plugin_tool_validate_post(exports_sigil_plugin_tool_call_info_t *call,
//!             tool_plugin_string_t *input, tool_plugin_string_t *output,
//!             exports_sigil_plugin_tool_tool_error_t *err) {
//!         return true;
//!     }
//!     bool exports_sigil_plugin_tool_rollback(exports_sigil_plugin_tool_call_info_t *call,
//!             tool_plugin_string_t *input, tool_plugin_string_t *maybe_output,
//!             exports_sigil_plugin_tool_tool_error_t *err) {
//!         return true;
//!     }
//! "#)?;
//!
//! let wit = concat!(env!("CARGO_MANIFEST_DIR"), "/../../wit");
//! let request = CBuild::new([source], wit, "tool-plugin", dir.path().join("hi.wasm"), dir.path().join("scratch"));
//! let component = build_c(&request)?;
//!
//! let interfaces = inspect_component(&component)?;
//! assert!(interfaces.exports().iter().any(|e| e == "sigil:plugin/tool@0.1.0"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]

mod c;
mod error;
mod inspect;
mod toolchain;

pub use c::{CBuild, WORLD_MARKER, build_c, declared_world};
pub use error::{BuildError, INSTALL_HINT};
pub use inspect::{ComponentInterfaces, inspect_component};
pub use toolchain::Toolchain;
