//! Record types and the canonical encoding their chain values cover.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::AuditError;

/// The `prev_hash` of the first record: 64 zeros.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Version tag written into every canonical encoding, so a future format can
/// be told apart from this one.
pub(crate) const CANONICAL_VERSION: u8 = 1;

/// Who caused a decision. Every part is optional because not every entry
/// point knows every part (a CLI call has no channel, a webhook no session).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// The user on whose behalf the plugin ran.
    pub user: Option<String>,
    /// The workspace the call belongs to.
    pub workspace: Option<String>,
    /// The session the call belongs to.
    pub session: Option<String>,
    /// The channel the request arrived on.
    pub channel: Option<String>,
}

/// What a record describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordKind {
    /// A policy decision: a capability was allowed or denied.
    Decision,
    /// How an allowed call ended.
    Outcome,
    /// A call held for a person's approval: the request (no verdict), then the decision
    /// (allow, or deny including a timeout) with who decided.
    Approval,
}

impl RecordKind {
    /// The lowercase name stored in the database and shown to users.
    pub fn as_str(self) -> &'static str {
        match self {
            RecordKind::Decision => "decision",
            RecordKind::Outcome => "outcome",
            RecordKind::Approval => "approval",
        }
    }
}

impl fmt::Display for RecordKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RecordKind {
    type Err = AuditError;

    /// # Errors
    ///
    /// [`AuditError::UnknownValue`] unless `s` is `decision`, `outcome` or `approval`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "decision" => Ok(RecordKind::Decision),
            "outcome" => Ok(RecordKind::Outcome),
            "approval" => Ok(RecordKind::Approval),
            other => Err(AuditError::UnknownValue {
                what: "record kind",
                value: other.to_owned(),
                expected: "`decision`, `outcome` or `approval`",
            }),
        }
    }
}

/// The result of a policy decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// The capability was granted.
    Allow,
    /// The capability was refused.
    Deny,
}

impl Verdict {
    /// The lowercase name stored in the database and shown to users.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Allow => "allow",
            Verdict::Deny => "deny",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Verdict {
    type Err = AuditError;

    /// # Errors
    ///
    /// [`AuditError::UnknownValue`] unless `s` is `allow` or `deny`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "allow" => Ok(Verdict::Allow),
            "deny" => Ok(Verdict::Deny),
            other => Err(AuditError::UnknownValue {
                what: "verdict",
                value: other.to_owned(),
                expected: "`allow` or `deny`",
            }),
        }
    }
}

/// A record as submitted, before it has a place in the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewRecord {
    /// Decision or outcome.
    pub kind: RecordKind,
    /// Who caused it.
    pub actor: Actor,
    /// The plugin's name.
    pub plugin: Option<String>,
    /// The plugin's version.
    pub plugin_version: Option<String>,
    /// Canonical capability text, e.g. `fs.read:/data/x`.
    pub capability: Option<String>,
    /// Allow or deny; set on decision records.
    pub decision: Option<Verdict>,
    /// Which rule decided, human readable.
    pub rule: String,
    /// Ties a decision to the outcome of the same call.
    pub call_id: Option<String>,
    /// How long the call took, in microseconds (at most `i64::MAX`).
    pub duration_us: Option<u64>,
    /// How the call ended, e.g. `ok` or `error: ...`; set on outcome records.
    pub outcome: Option<String>,
    /// The steps an outcome record's call went through, in order; empty on other records.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<CallStep>,
}

/// One step of a call as its outcome record keeps it: which step, and how it ended.
///
/// The audit log knows nothing of the dispatch: a step is named by the runtime
/// (`authorise`, `invoke`, `rollback`, ...), and this crate stores what it is given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallStep {
    /// The step's name, as the runtime calls it.
    pub step: String,
    /// Whether it succeeded.
    pub ok: bool,
    /// Why it failed, when it did; or what it did, when that is worth noting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl fmt::Display for CallStep {
    /// `invoke ok`, `invoke failed: why`, `before-hooks ok (2 ran)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.ok, &self.detail) {
            (true, None) => write!(f, "{} ok", self.step),
            (true, Some(detail)) => write!(f, "{} ok ({detail})", self.step),
            (false, None) => write!(f, "{} failed", self.step),
            (false, Some(detail)) => write!(f, "{} failed: {detail}", self.step),
        }
    }
}

impl CallStep {
    /// A step that succeeded.
    pub fn ok(step: impl Into<String>) -> CallStep {
        CallStep {
            step: step.into(),
            ok: true,
            detail: None,
        }
    }

    /// A step that failed, and why.
    pub fn failed(step: impl Into<String>, detail: impl Into<String>) -> CallStep {
        CallStep {
            step: step.into(),
            ok: false,
            detail: Some(detail.into()),
        }
    }
}

impl NewRecord {
    /// A decision record with the verdict and the rule that produced it;
    /// fill in the rest with the `with_*` methods.
    ///
    /// ```
    /// use sigil_audit::{NewRecord, Verdict};
    /// let r = NewRecord::decision(Verdict::Deny, "no grant for fs.write")
    ///     .with_plugin("notes", Some("1.2.0"))
    ///     .with_capability("fs.write:/etc/passwd")
    ///     .with_call_id("c-17");
    /// assert_eq!(r.decision, Some(Verdict::Deny));
    /// ```
    pub fn decision(verdict: Verdict, rule: impl Into<String>) -> NewRecord {
        NewRecord {
            kind: RecordKind::Decision,
            actor: Actor::default(),
            plugin: None,
            plugin_version: None,
            capability: None,
            decision: Some(verdict),
            rule: rule.into(),
            call_id: None,
            duration_us: None,
            outcome: None,
            steps: Vec::new(),
        }
    }

    /// An outcome record for the call `call_id`, e.g. `"ok"` or `"error: timeout"`.
    pub fn outcome(call_id: impl Into<String>, outcome: impl Into<String>) -> NewRecord {
        NewRecord {
            kind: RecordKind::Outcome,
            actor: Actor::default(),
            plugin: None,
            plugin_version: None,
            capability: None,
            decision: None,
            rule: String::new(),
            call_id: Some(call_id.into()),
            duration_us: None,
            outcome: Some(outcome.into()),
            steps: Vec::new(),
        }
    }

    /// Sets who caused the record.
    #[must_use]
    pub fn with_actor(mut self, actor: Actor) -> NewRecord {
        self.actor = actor;
        self
    }

    /// Sets the plugin's name and version.
    #[must_use]
    pub fn with_plugin(mut self, name: impl Into<String>, version: Option<&str>) -> NewRecord {
        self.plugin = Some(name.into());
        self.plugin_version = version.map(str::to_owned);
        self
    }

    /// Sets the canonical capability text.
    #[must_use]
    pub fn with_capability(mut self, capability: impl Into<String>) -> NewRecord {
        self.capability = Some(capability.into());
        self
    }

    /// Sets the call id.
    #[must_use]
    pub fn with_call_id(mut self, call_id: impl Into<String>) -> NewRecord {
        self.call_id = Some(call_id.into());
        self
    }

    /// Sets the call's duration in microseconds.
    #[must_use]
    pub fn with_duration_us(mut self, duration_us: u64) -> NewRecord {
        self.duration_us = Some(duration_us);
        self
    }

    /// The fields that are hashed, borrowed, in the form they are stored.
    ///
    /// # Errors
    ///
    /// [`AuditError::InvalidRecord`] if `duration_us` does not fit SQLite's
    /// signed 64-bit integers.
    pub(crate) fn canonical(&self, time_ms: i64) -> Result<Canonical<'_>, AuditError> {
        let duration_us = match self.duration_us {
            None => None,
            Some(us) => Some(i64::try_from(us).map_err(|_| AuditError::InvalidRecord {
                reason: format!("duration_us {us} is larger than {}", i64::MAX),
            })?),
        };
        Ok(Canonical {
            v: CANONICAL_VERSION,
            time_ms,
            kind: self.kind.as_str(),
            user: self.actor.user.as_deref(),
            workspace: self.actor.workspace.as_deref(),
            session: self.actor.session.as_deref(),
            channel: self.actor.channel.as_deref(),
            plugin: self.plugin.as_deref(),
            plugin_version: self.plugin_version.as_deref(),
            capability: self.capability.as_deref(),
            decision: self.decision.map(Verdict::as_str),
            rule: &self.rule,
            call_id: self.call_id.as_deref(),
            duration_us,
            outcome: self.outcome.as_deref(),
            steps: &self.steps,
        })
    }
}

/// A record as stored: its place in the chain, when it was submitted, and its hashes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Sequence number: 1, 2, 3, ... with no gaps.
    pub seq: u64,
    /// Unix time in milliseconds, taken when the record was submitted.
    pub time_ms: i64,
    /// The submitted content.
    #[serde(flatten)]
    pub record: NewRecord,
    /// The previous record's chain value ([`GENESIS_HASH`] for the first).
    pub prev_hash: String,
    /// This record's chain value: hex HMAC-SHA256, under the log's chain key, of
    /// `prev_hash` and this record's canonical encoding (hex SHA-256 for records
    /// written before the log was keyed). See the [crate docs](crate).
    pub hash: String,
}

/// The hashed content of a record, in a fixed field order.
///
/// Serialised with `serde_json` (compact, fields in declaration order,
/// `null` for absent values), this is the canonical encoding described in
/// the crate docs. It is built either from a [`NewRecord`] at write time or
/// from the raw stored columns at verify time, so both sides hash exactly
/// what is in the database.
#[derive(Debug, Serialize)]
pub(crate) struct Canonical<'a> {
    pub v: u8,
    pub time_ms: i64,
    pub kind: &'a str,
    pub user: Option<&'a str>,
    pub workspace: Option<&'a str>,
    pub session: Option<&'a str>,
    pub channel: Option<&'a str>,
    pub plugin: Option<&'a str>,
    pub plugin_version: Option<&'a str>,
    pub capability: Option<&'a str>,
    pub decision: Option<&'a str>,
    pub rule: &'a str,
    pub call_id: Option<&'a str>,
    pub duration_us: Option<i64>,
    pub outcome: Option<&'a str>,
    /// Absent when empty, so records without steps encode exactly as they always have.
    #[serde(skip_serializing_if = "<[CallStep]>::is_empty")]
    pub steps: &'a [CallStep],
}

impl Canonical<'_> {
    /// Replaces the contents of `buf` with the canonical JSON.
    pub fn write_json(&self, buf: &mut Vec<u8>) {
        buf.clear();
        // Serialising plain strings and integers into a Vec cannot fail; if it
        // somehow did, the hash would not match on verify and the record
        // would show up as edited rather than being silently accepted.
        let _ = serde_json::to_writer(&mut *buf, self);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_and_verdict_round_trip_through_text() {
        for kind in [
            RecordKind::Decision,
            RecordKind::Outcome,
            RecordKind::Approval,
        ] {
            assert_eq!(kind.to_string().parse::<RecordKind>().ok(), Some(kind));
        }
        for verdict in [Verdict::Allow, Verdict::Deny] {
            assert_eq!(verdict.to_string().parse::<Verdict>().ok(), Some(verdict));
        }
        let err = "Allow".parse::<Verdict>().err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("unknown verdict `Allow`: expected `allow` or `deny`")
        );
    }

    #[test]
    fn canonical_encoding_is_fixed() {
        let record = NewRecord::decision(Verdict::Allow, "grant fs.read")
            .with_plugin("notes", None)
            .with_capability("fs.read:/data/x");
        let canonical = record.canonical(1_700_000_000_000).ok();
        let json = canonical
            .as_ref()
            .and_then(|c| serde_json::to_string(c).ok());
        assert_eq!(
            json.as_deref(),
            Some(
                r#"{"v":1,"time_ms":1700000000000,"kind":"decision","user":null,"workspace":null,"session":null,"channel":null,"plugin":"notes","plugin_version":null,"capability":"fs.read:/data/x","decision":"allow","rule":"grant fs.read","call_id":null,"duration_us":null,"outcome":null}"#
            )
        );
        let mut buf = Vec::new();
        if let Some(c) = canonical {
            c.write_json(&mut buf);
        }
        assert_eq!(Some(String::from_utf8_lossy(&buf).into_owned()), json);
    }

    #[test]
    fn canonical_encoding_with_steps_ends_with_them() {
        let mut record = NewRecord::outcome("c-7", "error: timeout").with_duration_us(1500);
        record.steps = vec![
            CallStep::ok("authorise"),
            CallStep::failed("invoke", "deadline \"5s\" passed"),
        ];
        let json = record
            .canonical(1_700_000_000_000)
            .ok()
            .and_then(|c| serde_json::to_string(&c).ok());
        assert_eq!(
            json.as_deref(),
            Some(
                r#"{"v":1,"time_ms":1700000000000,"kind":"outcome","user":null,"workspace":null,"session":null,"channel":null,"plugin":null,"plugin_version":null,"capability":null,"decision":null,"rule":"","call_id":"c-7","duration_us":1500,"outcome":"error: timeout","steps":[{"step":"authorise","ok":true},{"step":"invoke","ok":false,"detail":"deadline \"5s\" passed"}]}"#
            )
        );
        // Without steps, the key is absent: the encoding records always had.
        record.steps.clear();
        let json = record
            .canonical(1_700_000_000_000)
            .ok()
            .and_then(|c| serde_json::to_string(&c).ok());
        assert_eq!(
            json.as_deref(),
            Some(
                r#"{"v":1,"time_ms":1700000000000,"kind":"outcome","user":null,"workspace":null,"session":null,"channel":null,"plugin":null,"plugin_version":null,"capability":null,"decision":null,"rule":"","call_id":"c-7","duration_us":1500,"outcome":"error: timeout"}"#
            )
        );
    }

    #[test]
    fn oversized_duration_is_refused() {
        let record = NewRecord::outcome("c1", "ok").with_duration_us(u64::MAX);
        assert!(matches!(
            record.canonical(0),
            Err(AuditError::InvalidRecord { .. })
        ));
    }
}
