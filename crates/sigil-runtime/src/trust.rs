//! Trust levels at load, and the operator's policy of which tiers each level may run in
//! (`[trust]` in `sigil.toml`).
//!
//! A plugin's trust level comes from how it arrived, never from its manifest: compiled in is
//! `trusted`; a directory whose digest list is signed by a key in `[trust.keys]`, every file
//! matching, is `verified`; anything else is `sandboxed`. A signature that is present but
//! broken, or files changed after signing, stop the plugin loading.
//!
//! Tiers from weakest to strongest isolation: builtin (none: the host's own code) < process
//! (a sandboxed native process) < wasm, container. wasm and container are not ordered against
//! each other: one confines a program to a WebAssembly instance with no system calls at all,
//! the other a native program to an OCI container; neither contains the other. The policy
//! lists the tiers each level may run in. Validation keeps it only ever stricter for lower
//! trust: `sandboxed_tiers` must be a subset of `verified_tiers`, so a tier refused to signed
//! plugins is refused to unsigned ones too. Trusted (compiled-in) plugins run in the builtin
//! tier.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use sigil_audit::{Actor, NewRecord, Verdict};
use sigil_manifest::{Tier, ValidatedManifest};
use sigil_trust::{DigestList, PublicKey, Signature, TrustError, TrustedKeys};

use crate::enforcer::{Enforcer, Refusal};

pub use sigil_trust::Trust;

/// `[trust]` as written.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTrust {
    /// Trusted public keys by name: minisign's base64 line (`RW…`).
    #[serde(default)]
    keys: BTreeMap<String, String>,
    /// The tiers unsigned plugins may run in; every non-builtin tier when absent.
    sandboxed_tiers: Option<Vec<Tier>>,
    /// The tiers plugins signed by a trusted key may run in; every non-builtin tier when absent.
    verified_tiers: Option<Vec<Tier>>,
}

/// The trust store and the tier policy of `[trust]`, validated.
#[derive(Debug, Clone)]
pub struct TrustPolicy {
    keys: TrustedKeys,
    sandboxed: Vec<Tier>,
    verified: Vec<Tier>,
    /// The lists as the operator wrote them, for messages.
    sandboxed_text: String,
}

/// The tiers a directory plugin may use when the policy does not narrow them.
const DIRECTORY_TIERS: [Tier; 3] = [Tier::Wasm, Tier::Process, Tier::Container];

impl TrustPolicy {
    /// Validates `[trust]`; errors name the key (`trust.keys.NAME`, `trust.sandboxed_tiers`).
    pub(crate) fn from_raw(raw: &RawTrust) -> Result<TrustPolicy, String> {
        let mut keys = TrustedKeys::default();
        for (name, text) in &raw.keys {
            let what = format!("trust.keys.{name}");
            let key = PublicKey::parse(text, &what).map_err(|e| e.to_string())?;
            keys.insert(name, key).map_err(|e| format!("{what}: {e}"))?;
        }
        let list = |field: &str, tiers: &Option<Vec<Tier>>| -> Result<Vec<Tier>, String> {
            let tiers = tiers.clone().unwrap_or_else(|| DIRECTORY_TIERS.to_vec());
            for tier in &tiers {
                if *tier == Tier::Builtin {
                    return Err(format!(
                        "trust.{field}: `builtin` is only for plugins compiled into sigil, which are always trusted; remove it"
                    ));
                }
            }
            Ok(tiers)
        };
        let sandboxed = list("sandboxed_tiers", &raw.sandboxed_tiers)?;
        let verified = list("verified_tiers", &raw.verified_tiers)?;
        if let Some(weaker) = sandboxed.iter().find(|t| !verified.contains(t)) {
            return Err(format!(
                "trust.sandboxed_tiers: allows `{weaker}`, which trust.verified_tiers does not; \
                 lower trust may never run where higher trust may not: remove `{weaker}` from \
                 trust.sandboxed_tiers or add it to trust.verified_tiers"
            ));
        }
        let sandboxed_text = format!(
            "[{}]",
            sandboxed
                .iter()
                .map(|t| format!("\"{t}\""))
                .collect::<Vec<_>>()
                .join(", ")
        );
        Ok(TrustPolicy {
            keys,
            sandboxed,
            verified,
            sandboxed_text,
        })
    }

    /// The trust store: `[trust.keys]`.
    pub fn keys(&self) -> &TrustedKeys {
        &self.keys
    }

    /// The tiers a plugin of trust level `trust` may run in.
    pub fn tiers(&self, trust: &Trust) -> &[Tier] {
        match trust {
            Trust::Trusted => &[Tier::Builtin],
            Trust::Verified { .. } => &self.verified,
            Trust::Sandboxed => &self.sandboxed,
        }
    }

    /// Whether a plugin of trust level `trust` may run in `tier`.
    ///
    /// # Errors
    /// A sentence for the operator naming the policy key and what to do.
    pub fn allows(&self, trust: &Trust, tier: Tier) -> Result<(), String> {
        if self.tiers(trust).contains(&tier) {
            return Ok(());
        }
        Err(match trust {
            Trust::Trusted => format!("a compiled-in plugin must use tier `builtin`, not `{tier}`"),
            Trust::Sandboxed => format!(
                "tier `{tier}` is not allowed for sandboxed (unsigned) plugins by `[trust] \
                 sandboxed_tiers = {}` in sigil.toml; sign the plugin with a key in the trust \
                 store (`sigil plugin sign`, `sigil trust add`) or add `{tier}` to \
                 trust.sandboxed_tiers",
                self.sandboxed_text
            ),
            Trust::Verified { key, .. } => format!(
                "tier `{tier}` is not allowed for verified plugins by `[trust] verified_tiers` \
                 in sigil.toml (signed by `{key}`); add `{tier}` to trust.verified_tiers"
            ),
        })
    }
}

/// A directory plugin's trust level, with the digest list its signature covers (verified
/// plugins only).
#[derive(Debug, Clone)]
pub(crate) struct Assessed {
    pub(crate) trust: Trust,
    digests: Option<DigestList>,
}

/// The trust level of the plugin directory `dir` under `policy`.
///
/// # Errors
/// A broken or forged signature, or files that do not match their signed digests (each named).
pub(crate) fn assess(dir: &Path, policy: &TrustPolicy) -> Result<Assessed, String> {
    match sigil_trust::verify_dir(dir, policy.keys()) {
        Ok(Signature::Unsigned) => Ok(Assessed {
            trust: Trust::Sandboxed,
            digests: None,
        }),
        Ok(Signature::UnknownSigner { id }) => {
            tracing::info!(dir = %dir.display(), key_id = %id, "signed by a key not in the trust store; sandboxed");
            Ok(Assessed {
                trust: Trust::Sandboxed,
                digests: None,
            })
        }
        Ok(Signature::Verified { key, id, digests }) => Ok(Assessed {
            trust: Trust::Verified {
                key,
                key_id: id.to_string(),
            },
            digests: Some(digests),
        }),
        Err(error) => Err(format!("signature check failed: {error}")),
    }
}

impl Assessed {
    /// Checks that a verified plugin's entry is one of its signed files (an entry under a
    /// name the digest list leaves out, such as `target/`, would run unsigned code), then
    /// that `policy` lets its trust level run in its tier.
    pub(crate) fn check(
        &self,
        dir: &Path,
        manifest: &ValidatedManifest,
        policy: &TrustPolicy,
    ) -> Result<(), String> {
        if let (Some(digests), Some(entry)) = (&self.digests, &manifest.execution().entry) {
            let listed = entry.to_string_lossy().replace('\\', "/");
            if !digests.contains(listed.trim_start_matches("./")) {
                return Err(format!(
                    "execution.entry `{}` is not in the signed digest list {}; sign the plugin with its entry inside it",
                    entry.display(),
                    dir.join(sigil_trust::DIGESTS_FILE).display()
                ));
            }
        }
        match manifest.execution().tier {
            // Refused for every directory plugin when it loads, with its own message.
            Tier::Builtin => Ok(()),
            tier => policy.allows(&self.trust, tier),
        }
    }
}

impl Assessed {
    /// The signed files, for a verified plugin's tier to check what it runs, at load and at
    /// every restart (see [`SignedFiles`]).
    pub(crate) fn signed_files(
        &self,
        dir: &Path,
        manifest: &ValidatedManifest,
        enforcer: &Arc<Enforcer>,
    ) -> Option<SignedFiles> {
        let digests = self.digests.clone()?;
        Some(SignedFiles {
            inner: Arc::new(SignedInner {
                plugin: manifest.id().to_string(),
                version: manifest.version().to_string(),
                dir: dir.to_path_buf(),
                digests,
                enforcer: enforcer.clone(),
                broken: Mutex::new(None),
            }),
        })
    }
}

/// The files a verified plugin was verified with, handed to its tier so that what runs is
/// what was signed: at load and at every restart the tier checks the bytes it is about to run
/// ([`SignedFiles::stage`] for a process started from a private copy,
/// [`SignedFiles::check_file`] for a component read once), never the directory as it was
/// when the runtime looked.
///
/// The first check that fails breaks the plugin's trust for good: the failure is recorded as
/// a deny in the audit log, the tier refuses to start the plugin, and the runtime lists it in
/// the error state and no longer as verified. Reinstalling or re-signing it and reloading
/// starts afresh. Cheap to clone.
#[derive(Debug, Clone)]
pub struct SignedFiles {
    inner: Arc<SignedInner>,
}

#[derive(Debug)]
struct SignedInner {
    plugin: String,
    version: String,
    dir: PathBuf,
    digests: DigestList,
    enforcer: Arc<Enforcer>,
    broken: Mutex<Option<String>>,
}

impl SignedFiles {
    /// Copies the plugin's files from `from` (its directory, or a path to the handle a tier
    /// holds of it) into the empty private directory `to`, checking every byte copied against
    /// the signed digest list. Run the copy: nothing edited after the check reaches it.
    ///
    /// # Errors
    /// When the files differ from the signed ones (naming each), or cannot be copied. A
    /// difference breaks the plugin's trust (see the type's docs); the partial copy is the
    /// caller's to remove.
    pub fn stage(&self, from: &Path, to: &Path) -> Result<(), String> {
        self.usable()?;
        match self.inner.digests.copy_verified(from, to) {
            Ok(()) => Ok(()),
            Err(error @ TrustError::Tampered { .. }) => Err(self.break_trust(&error)),
            Err(error) => Err(format!(
                "cannot copy the signed files of `{}` to run them: {error}",
                self.inner.plugin
            )),
        }
    }

    /// Checks `bytes`, read from the plugin's file `entry` (relative to its directory), against
    /// the signed digest list.
    ///
    /// # Errors
    /// When the bytes are not the signed ones; that breaks the plugin's trust.
    pub fn check_file(&self, entry: &Path, bytes: &[u8]) -> Result<(), String> {
        self.usable()?;
        let listed = entry.to_string_lossy().replace('\\', "/");
        let listed = listed.trim_start_matches("./");
        self.inner
            .digests
            .check_file(&self.inner.dir, listed, bytes)
            .map_err(|error| self.break_trust(&error))
    }

    /// Why the plugin is no longer verified, once a check has failed.
    pub fn broken(&self) -> Option<String> {
        self.inner
            .broken
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn usable(&self) -> Result<(), String> {
        match self.broken() {
            Some(reason) => Err(reason),
            None => Ok(()),
        }
    }

    /// Marks the plugin's trust broken and records why.
    fn break_trust(&self, error: &TrustError) -> String {
        let reason = format!(
            "the signed files changed after the plugin was verified ({error}); it is stopped and no longer verified: reinstall or re-sign it, then reload it"
        );
        {
            let mut broken = self
                .inner
                .broken
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(earlier) = broken.as_ref() {
                return earlier.clone();
            }
            *broken = Some(reason.clone());
        }
        tracing::error!(plugin = %self.inner.plugin, %reason, "signed plugin changed after verification");
        self.inner.enforcer.refuse_blocking(&Refusal {
            plugin: &self.inner.plugin,
            version: Some(&self.inner.version),
            capability: None,
            actor: &Actor::default(),
            call_id: None,
            reason: &reason,
        });
        reason
    }
}

/// The trust level the plugin in `dir` (with `manifest`, read from it) loads with under
/// `config`'s `[trust]`: what install shows before consent.
///
/// # Errors
/// As the plugin would fail to load: a broken or forged signature, files changed after
/// signing (named), an entry the signature does not cover, or a tier its trust level may not
/// use (naming the policy key).
pub fn directory_trust(
    dir: &Path,
    manifest: &ValidatedManifest,
    config: &crate::Config,
) -> Result<Trust, String> {
    let assessed = assess(dir, config.trust())?;
    assessed.check(dir, manifest, config.trust())?;
    Ok(assessed.trust)
}

/// The audit record of an operator's consent at install: who consented, to which
/// capabilities, and the plugin's trust level and signer. Front ends append it before the
/// plugin is installed, so a consent the log does not hold never takes effect.
pub fn consent_record(
    actor: &Actor,
    manifest: &ValidatedManifest,
    consent: &[String],
    trust: &Trust,
) -> NewRecord {
    let consented = if consent.is_empty() {
        "nothing".to_string()
    } else {
        consent.join(", ")
    };
    let trust = match trust {
        Trust::Verified { key, key_id } => format!("verified, signed by key `{key}` ({key_id})"),
        other => other.level().to_string(),
    };
    NewRecord::decision(
        Verdict::Allow,
        format!("install consent: {consented}; trust: {trust}"),
    )
    .with_actor(actor.clone())
    .with_plugin(
        manifest.id().as_str(),
        Some(manifest.version().to_string().as_str()),
    )
    .with_capability("admin.plugins")
}
