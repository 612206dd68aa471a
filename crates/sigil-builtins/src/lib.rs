//! Plugins compiled into Sigil. Each sits behind a Cargo feature of the same name and
//! implements the same [`sigil_runtime::ToolPlugin`] contract as plugins of every other tier.
//! Compiled-in plugins are trusted by construction: building them in is the operator's consent
//! to what their manifests request. Their host actions still pass the enforcer.

#![forbid(unsafe_code)]

#[cfg(feature = "fs")]
pub mod fs;
#[cfg(feature = "text")]
pub mod text;

/// Every builtin enabled in this build.
pub fn all() -> Vec<sigil_runtime::Builtin> {
    [
        #[cfg(feature = "fs")]
        fs::plugin(),
        #[cfg(feature = "text")]
        text::plugin(),
    ]
    .into_iter()
    .collect()
}
