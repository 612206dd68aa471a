//! Which records a query or export returns, and parsing of `--since` times.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::types::Value;

use crate::{AuditError, RecordKind, Verdict};

/// Selects records for [`AuditLog::query`](crate::AuditLog::query) and
/// [`AuditLog::export`](crate::AuditLog::export). Every set field must match;
/// the default matches everything.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only records of this plugin.
    pub plugin: Option<String>,
    /// Only records whose actor is this user.
    pub user: Option<String>,
    /// Only decision records with this verdict.
    pub decision: Option<Verdict>,
    /// Only records of this kind.
    pub kind: Option<RecordKind>,
    /// Only records submitted at or after this time.
    pub since: Option<SystemTime>,
    /// Only records of this call.
    pub call_id: Option<String>,
    /// At most this many records: the newest ones that match, still returned oldest first.
    pub limit: Option<usize>,
}

impl Filter {
    /// The `WHERE ... ORDER BY ... LIMIT` tail of a select over
    /// `audit_records`, and its parameters.
    pub(crate) fn to_sql(&self) -> (String, Vec<Value>) {
        let mut clauses: Vec<&str> = Vec::new();
        let mut params: Vec<Value> = Vec::new();
        if let Some(plugin) = &self.plugin {
            clauses.push("plugin = ?");
            params.push(Value::Text(plugin.clone()));
        }
        if let Some(user) = &self.user {
            clauses.push("actor_user = ?");
            params.push(Value::Text(user.clone()));
        }
        if let Some(decision) = self.decision {
            clauses.push("decision = ?");
            params.push(Value::Text(decision.as_str().to_owned()));
        }
        if let Some(kind) = self.kind {
            clauses.push("kind = ?");
            params.push(Value::Text(kind.as_str().to_owned()));
        }
        if let Some(since) = self.since {
            clauses.push("time_ms >= ?");
            params.push(Value::Integer(unix_ms(since)));
        }
        if let Some(call_id) = &self.call_id {
            clauses.push("call_id = ?");
            params.push(Value::Text(call_id.clone()));
        }
        let mut sql = String::new();
        if !clauses.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&clauses.join(" AND "));
        }
        match self.limit {
            None => sql.push_str(" ORDER BY seq ASC"),
            Some(limit) => {
                // The newest `limit` matches, which the caller re-sorts ascending.
                sql.push_str(" ORDER BY seq DESC LIMIT ?");
                params.push(Value::Integer(i64::try_from(limit).unwrap_or(i64::MAX)));
            }
        }
        (sql, params)
    }
}

/// Milliseconds since the Unix epoch, negative before it, saturating at the `i64` range.
pub(crate) fn unix_ms(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_millis()).unwrap_or(i64::MAX),
        Err(before) => i64::try_from(before.duration().as_millis())
            .map(|ms| -ms)
            .unwrap_or(i64::MIN),
    }
}

/// Parses a `since` time: an RFC 3339 UTC time such as `2026-11-23T10:00:00Z`
/// (the `T` may be a space, the `Z` may be left out, fractional seconds are
/// kept; other offsets are refused), or a duration such as `15m`, `2h`, `7d`
/// or `1h 30m`, meaning that long before now.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// let t = sigil_audit::parse_since("2h")?;
/// let ago = SystemTime::now().duration_since(t).unwrap_or_default();
/// assert!(ago >= Duration::from_secs(7200));
/// # Ok::<(), sigil_audit::AuditError>(())
/// ```
///
/// # Errors
///
/// [`AuditError::InvalidSince`] if `s` is neither form, or the duration
/// reaches back before the clock can represent.
pub fn parse_since(s: &str) -> Result<SystemTime, AuditError> {
    let text = s.trim();
    let invalid = |reason: String| AuditError::InvalidSince {
        input: s.to_owned(),
        reason,
    };
    if text.is_empty() {
        return Err(invalid("it is empty".to_owned()));
    }
    // A duration never contains '-' or ':', a timestamp always does.
    if text.contains(['-', ':']) {
        return humantime::parse_rfc3339_weak(text).map_err(|e| invalid(e.to_string()));
    }
    let ago: Duration = humantime::parse_duration(text).map_err(|e| invalid(e.to_string()))?;
    SystemTime::now()
        .checked_sub(ago)
        .ok_or_else(|| invalid("it reaches back further than the clock can represent".to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_filter_selects_everything_in_order() {
        let (sql, params) = Filter::default().to_sql();
        assert_eq!(sql, " ORDER BY seq ASC");
        assert!(params.is_empty());
    }

    #[test]
    fn every_field_becomes_a_clause() {
        let filter = Filter {
            plugin: Some("p".into()),
            user: Some("u".into()),
            decision: Some(Verdict::Deny),
            kind: Some(RecordKind::Decision),
            since: Some(UNIX_EPOCH + Duration::from_millis(5)),
            call_id: Some("c".into()),
            limit: Some(3),
        };
        let (sql, params) = filter.to_sql();
        assert_eq!(
            sql,
            " WHERE plugin = ? AND actor_user = ? AND decision = ? AND kind = ? \
             AND time_ms >= ? AND call_id = ? ORDER BY seq DESC LIMIT ?"
        );
        assert_eq!(params.len(), 7);
        assert_eq!(params[4], Value::Integer(5));
        assert_eq!(params[6], Value::Integer(3));
    }

    #[test]
    fn unix_ms_handles_times_before_the_epoch() {
        assert_eq!(unix_ms(UNIX_EPOCH - Duration::from_millis(1500)), -1500);
        assert_eq!(unix_ms(UNIX_EPOCH + Duration::from_millis(1500)), 1500);
    }
}
