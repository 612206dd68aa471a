//! Sigil's runtime: the enforcer, the plugin lifecycle and manager, the tool contract, and
//! the dispatch path every call takes.
//!
//! The runtime knows nothing of wasmtime, gRPC, OCI or HTTP: tiers plug in behind
//! [`ToolPlugin`], and gateways call [`Runtime::invoke`].

#![forbid(unsafe_code)]

mod config;
mod enforcer;
mod events;
mod kv;
mod lifecycle;
mod manager;
mod runtime;
mod tool;

pub use config::{Config, ConfigError, DEFAULT_CONFIG, Home, SecretValue};
pub use enforcer::{Check, Enforcer, Registration, Subject};
pub use events::{CAPACITY as EVENT_CAPACITY, Event, Events};
pub use kv::{KvStore, MAX_VALUE_BYTES};
pub use lifecycle::{IllegalTransition, Lifecycle, State};
pub use manager::{
    Builtin, Failure, LoadRequest, Manager, PluginEntry, PluginSummary, Source, TierLoader,
};
pub use runtime::{
    Approval, ControlError, DEFAULT_HOOK_TIMEOUT, DEFAULT_OUTPUT_BYTES, DEFAULT_TIMEOUT, EmitError,
    HOT_RELOAD_QUIET, HotReload, Invocation, InvokeError, OpenError, Runtime, Step, ToolListing,
};
pub use tool::{Call, HeldTool, HookVerdict, Steps, ToolDescriptor, ToolError, ToolPlugin};

pub use async_trait::async_trait;
pub use sigil_audit::Actor;
pub use sigil_manifest::HookEvent;
