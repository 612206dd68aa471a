//! Sigil: a secure plugin runtime for AI agents. This crate is the embedding API.
//!
//! Open a data directory, list the tools, call one. Every call passes the enforcer and lands in
//! the tamper-evident audit log.
//!
//! ```
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let home = tempfile::tempdir()?;
//! let sigil = sigil::open(Some(home.path()))?;
//!
//! let actor = sigil.local_actor(None, None);
//! let result = sigil
//!     .invoke(&actor, "text/sha256", serde_json::json!({ "text": "hello" }))
//!     .await?;
//! assert_eq!(
//!     result.output["sha256"],
//!     "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
//! );
//!
//! // One record for the decision, one for the outcome; the chain verifies.
//! assert!(sigil.audit().verify()?.problem.is_none());
//! # Ok(()) }
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(demo()).unwrap();
//! ```
//!
//! The pieces, each usable on its own:
//! - [`policy`]: the capability grammar and the authority decision (no I/O);
//! - [`manifest`]: the plugin manifest and its validator;
//! - [`audit`]: the audit log, chained with a keyed MAC, with signed checkpoints;
//! - `sigil_wasm` (feature `wasm`, on by default): the WebAssembly tier;
//! - `sigil_process` (feature `process`): the process tier, sandboxed executables speaking
//!   gRPC;
//! - the runtime items re-exported at the root: [`Runtime`], [`Enforcer`], [`Manager`],
//!   [`ToolPlugin`] and the lifecycle.

#![forbid(unsafe_code)]

use std::path::Path;

pub use sigil_audit as audit;
pub use sigil_manifest as manifest;
pub use sigil_policy as policy;
pub use sigil_runtime::*;

/// The plugins compiled into this build (see the crate's `builtin-*` features).
pub fn builtins() -> Vec<Builtin> {
    sigil_builtins::all()
}

/// Opens Sigil on a data directory (`home`, else `$SIGIL_HOME`, else the platform data
/// directory) with this build's builtin plugins.
///
/// # Errors
/// When the directory cannot be created, `sigil.toml` is invalid, or the database cannot be
/// opened.
pub fn open(home: Option<&Path>) -> Result<Runtime, OpenError> {
    let home = Home::resolve(home)?;
    let tiers = tiers(&home);
    Runtime::open_with(home, builtins(), tiers)
}

/// [`open`], but starting no plugin from a directory: for commands that only read the audit
/// log or explain a decision ([`Runtime::open_inactive`]).
///
/// # Errors
/// As [`open`].
pub fn open_inactive(home: Option<&Path>) -> Result<Runtime, OpenError> {
    Runtime::open_inactive(Home::resolve(home)?, builtins())
}

/// The tiers compiled into this build, for plugins installed from directories.
fn tiers(home: &Home) -> Vec<(manifest::Tier, std::sync::Arc<dyn TierLoader>)> {
    #[allow(unused_mut)]
    let mut tiers: Vec<(manifest::Tier, std::sync::Arc<dyn TierLoader>)> = Vec::new();
    #[cfg(feature = "wasm")]
    match sigil_wasm::WasmTier::new(home.root().join("cache").join("wasm")) {
        Ok(tier) => tiers.push((manifest::Tier::Wasm, std::sync::Arc::new(tier))),
        // Without the tier its plugins are listed as failed, with this reason in the log.
        Err(error) => warn_tier_unavailable(&error),
    }
    #[cfg(feature = "process")]
    match sigil_process::ProcessTier::new(home.root().join("run").join("process")) {
        Ok(tier) => {
            let tier = tier.state_dir(home.root().join("state").join("mcp"));
            tiers.push((manifest::Tier::Process, std::sync::Arc::new(tier)));
        }
        // Without the tier its plugins are listed as failed; say why once.
        Err(error) => eprintln!("warning: the process tier is unavailable: {error}"),
    }
    #[cfg(not(any(feature = "wasm", feature = "process")))]
    let _ = home;
    tiers
}

#[cfg(feature = "wasm")]
fn warn_tier_unavailable(error: &str) {
    eprintln!("warning: the wasm tier is unavailable: {error}");
}
