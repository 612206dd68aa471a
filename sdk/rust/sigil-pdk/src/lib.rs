//! Sigil's plugin kit for Rust: WebAssembly tool plugins as typed functions.
//!
//! A tool is a function from a typed input to a typed output. Its JSON Schemas are derived
//! from the types, its input is decoded (a mismatch is an `invalid-input` error before the
//! function runs), and [`plugin!`] exports the tools as the component Sigil's host loads
//! (WIT world `sigil:plugin/tool-plugin`). The same dispatch runs natively under
//! [`testing::Harness`], so tools are unit-tested with `cargo test`, no component needed.
//!
//! ```
//! use sigil_pdk::prelude::*;
//!
//! #[derive(Deserialize, JsonSchema)]
//! #[serde(deny_unknown_fields)]
//! struct Input {
//!     /// Who to greet.
//!     name: String,
//! }
//!
//! #[derive(Serialize, Deserialize, JsonSchema)]
//! struct Output {
//!     greeting: String,
//!     visits: u64,
//! }
//!
//! fn greet(ctx: &mut Ctx, input: Input) -> Result<Output, ToolError> {
//!     if input.name.trim().is_empty() {
//!         return Err(ToolError::invalid_input("`name` is blank"));
//!     }
//!     let visits = ctx.kv_get_json::<u64>("visits")?.unwrap_or(0) + 1;
//!     ctx.kv_set_json("visits", &visits)?;
//!     ctx.info(format!("greeting {}", input.name));
//!     Ok(Output { greeting: format!("hello, {}", input.name), visits })
//! }
//!
//! sigil_pdk::plugin![Tool::new("greet", "Greets someone by name.", greet)];
//!
//! # fn main() {
//! // In the plugin's tests:
//! use sigil_pdk::testing::Harness;
//! use serde_json::json;
//!
//! let mut h = Harness::new(plugin()).grant_kv();
//! assert_eq!(h.invoke("greet", json!({"name": "ada"})).unwrap(),
//!            json!({"greeting": "hello, ada", "visits": 1}));
//! assert_eq!(h.invoke("greet", json!({"name": " "})).unwrap_err(),
//!            ToolError::invalid_input("`name` is blank"));
//! assert_eq!(h.logs(), [(Level::Info, "greeting ada".to_string())]);
//! # }
//! ```
//!
//! Build the component with `sigil plugin build` (it runs
//! `cargo build --release --target wasm32-wasip2`; the target comes from
//! `rustup target add wasm32-wasip2`). The crate needs `crate-type = ["cdylib", "rlib"]`.
//!
//! # Host calls
//!
//! Through [`Ctx`]: `log` (and `trace` … `error`), `kv_get` / `kv_set` / `kv_delete` (and
//! `_json` forms), `config` / `config_as`, `secret_ref`. Each is checked by the host against
//! the plugin's grants and may fail with a [`HostError`], which `?` turns into the tool's
//! [`ToolError`] (`denied` when the host denied it).
//!
//! # Pipeline steps
//!
//! [`Tool::validate_pre`], [`Tool::validate_post`] and [`Tool::rollback`] add the optional
//! steps; the descriptor's `steps` record says which exist, and the host calls only those.
//!
//! # Security
//! A plugin cannot widen its authority: every host call is checked by the host's enforcer, and
//! secrets reach it only as placeholders ([`Ctx::secret_ref`]). Outgoing HTTP (the world
//! `tool-plugin-http`) is not part of this kit yet.

#![deny(unsafe_code)] // forbid would refuse the one allowed module: `component::bindings`.

extern crate self as sigil_pdk;

mod component;
mod ctx;
mod error;
mod host;
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;
mod tool;

pub use component::WasmHost;
pub use ctx::Ctx;
pub use error::{HostError, ToolError};
pub use host::{CallInfo, Host, Level};
pub use tool::{Plugin, PluginError, Steps, Tool, ToolDescriptor};

/// Re-exported so a plugin names the same versions the kit uses.
pub use schemars;
pub use serde;
pub use serde_json;

/// Everything a tool module needs: `use sigil_pdk::prelude::*;`.
pub mod prelude {
    pub use crate::{Ctx, HostError, Level, Tool, ToolError};
    pub use schemars::JsonSchema;
    pub use serde::{Deserialize, Serialize};
}

/// Declares the plugin's tools and exports them from the component.
///
/// Defines `pub fn plugin() -> sigil_pdk::Plugin` in the calling module (for tests, with
/// [`testing::Harness`]), and, when compiling for `wasm32`, the component export of the
/// `sigil:plugin/tool` interface dispatching to it. Call it once per crate.
///
/// ```
/// # use sigil_pdk::prelude::*;
/// # fn add(_: &mut Ctx, (a, b): (i64, i64)) -> Result<i64, ToolError> { Ok(a + b) }
/// # fn undo(_: &mut Ctx, _: &(i64, i64), _: Option<&i64>) -> Result<(), ToolError> { Ok(()) }
/// sigil_pdk::plugin![
///     Tool::new("add", "Adds two numbers.", add),
///     Tool::new("add-undoable", "Adds, and can be undone.", add).rollback(undo),
/// ];
/// # fn main() { assert_eq!(plugin().descriptors().len(), 2); }
/// ```
#[macro_export]
macro_rules! plugin {
    ($($tool:expr),+ $(,)?) => {
        /// This plugin's tools: what the component exports, and what its tests run through
        /// `sigil_pdk::testing::Harness`.
        pub fn plugin() -> $crate::Plugin {
            $crate::Plugin::new()$(.tool($tool))+
        }

        #[doc(hidden)]
        #[allow(dead_code)] // natively, nothing calls the export
        mod __sigil_pdk_component {
            pub struct Component;

            fn plugin() -> &'static $crate::Plugin {
                static PLUGIN: ::std::sync::OnceLock<$crate::Plugin> = ::std::sync::OnceLock::new();
                PLUGIN.get_or_init(super::plugin)
            }

            impl $crate::__private::Guest for Component {
                fn describe() -> ::std::vec::Vec<$crate::__private::ToolDescriptor> {
                    $crate::__private::describe(plugin())
                }
                fn invoke(
                    call: $crate::__private::CallInfo,
                    input: ::std::string::String,
                ) -> ::std::result::Result<::std::string::String, $crate::__private::ToolError> {
                    $crate::__private::invoke(plugin(), call, input)
                }
                fn validate_pre(
                    call: $crate::__private::CallInfo,
                    input: ::std::string::String,
                ) -> ::std::result::Result<(), $crate::__private::ToolError> {
                    $crate::__private::validate_pre(plugin(), call, input)
                }
                fn validate_post(
                    call: $crate::__private::CallInfo,
                    input: ::std::string::String,
                    output: ::std::string::String,
                ) -> ::std::result::Result<(), $crate::__private::ToolError> {
                    $crate::__private::validate_post(plugin(), call, input, output)
                }
                fn rollback(
                    call: $crate::__private::CallInfo,
                    input: ::std::string::String,
                    output: ::std::option::Option<::std::string::String>,
                ) -> ::std::result::Result<(), $crate::__private::ToolError> {
                    $crate::__private::rollback(plugin(), call, input, output)
                }
            }

            #[cfg(target_arch = "wasm32")]
            $crate::__private::bindings::export_tool_plugin!(Component);
        }
    };
}

/// Used by [`plugin!`]'s expansion; not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use crate::component::bindings;
    pub use crate::component::bindings::exports::sigil::plugin::tool::Guest;
    pub use crate::component::bindings::sigil::plugin::types::{
        CallInfo, ToolDescriptor, ToolError,
    };
    pub use crate::component::{describe, invoke, rollback, validate_post, validate_pre};
    pub use wit_bindgen;
}
