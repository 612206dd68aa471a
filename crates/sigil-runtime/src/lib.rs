//! Sigil's runtime: the enforcer, the plugin lifecycle and manager, the tool contract, and
//! the dispatch path every call takes.
//!
//! The runtime knows nothing of wasmtime, gRPC, OCI or HTTP: tiers plug in behind
//! [`ToolPlugin`], and gateways call [`Runtime::invoke`].

#![forbid(unsafe_code)]

mod approval_rules;
mod config;
mod enforcer;
mod events;
pub mod guest_text;
pub use sigil_store::files;
#[doc(hidden)]
pub mod fuzzing;
mod granted_dirs;
mod kv;
mod lifecycle;
mod manager;
mod runtime;
mod secret_binding;
mod secrets;
mod tool;
mod trust;

pub use approval_rules::{
    ApprovalDecision, ApprovalError, ApprovalMode, ApprovalRule, DEFAULT_APPROVAL_TIMEOUT,
    PendingApproval,
};
pub use config::{Config, ConfigError, DEFAULT_CONFIG, Home, SECRET_MARKER, SecretValue};
pub use enforcer::{
    Check, Denial, Enforcer, MALFORMED_TEXT_CHARS, Refusal, Registration, Subject, shown_text,
};
pub use events::{CAPACITY as EVENT_CAPACITY, Event, Events};
pub use granted_dirs::{GrantedDir, GrantedDirs, HeldDir, granted_dirs};
pub use kv::{KvStore, MAX_VALUE_BYTES};
pub use lifecycle::{IllegalTransition, Lifecycle, State};
pub use manager::{
    Builtin, Failure, LoadRequest, Manager, PluginEntry, PluginSummary, Source, TierLoader,
};
pub use runtime::{
    ADMIN_CONFIG, APPROVALS_DECIDE, Approval, ApprovalRequest, CommandCaller, CommandError,
    ConfigChange, ConfigUpdateError, ConfigWatch, ControlError, DEFAULT_HOOK_TIMEOUT,
    DEFAULT_OUTPUT_BYTES, DEFAULT_TIMEOUT, DecidedApproval, EmitError, HOT_RELOAD_QUIET, HotReload,
    Invocation, InvokeError, MAX_COMMAND_ARGS_BYTES, OpenError, PluginCommand, Runtime, STAGES,
    Stage, Step, ToolListing, clean_command_args, stage_timing,
};
pub use secret_binding::{BoundSecret, OutboundRequest, SecretDestination};
pub use tool::{Call, HeldTool, HookVerdict, Steps, ToolDescriptor, ToolError, ToolPlugin};
pub use trust::{SignedFiles, Trust, TrustPolicy, consent_record, directory_trust};

pub use async_trait::async_trait;
pub use sigil_audit::Actor;
pub use sigil_manifest::HookEvent;
