//! The audit records of one tool call, committed when the call's effects need them.
//!
//! A tool call leaves several records: the decision to let the actor call the tool, the
//! plugin's host decisions, hook decisions, and the outcome. Committing each on its own costs a
//! commit (with `durability = "disk"`, an fsync) per record. Yet what a record protects is an
//! *effect*: nobody outside the plugin can observe that the call happened until it writes a
//! file, opens a connection, changes a key, uses a secret or returns a result. So the records of
//! a call wait in its journal, and are committed, in order, in one transaction:
//!
//! - before a host call with an effect proceeds (the enforcer flushes the journal when it
//!   allows one, see `is_effect`); the egress proxy's connections are such host calls;
//! - before a plugin that can act without asking (a directory it may write is mounted into it)
//!   runs at all, and before a call waits for a person's approval (the dispatch flushes);
//! - with the outcome, before the result is returned ([`CallJournal::finish`]).
//!
//! A call that makes no effectful host call therefore costs one commit. A record that cannot be
//! committed stops what needed it: the effect is denied, and the call does not return success.
//!
//! # Security
//! Only records naming an open journal's call id wait in it; every other record is committed on
//! its own before its decision takes effect, as always. A journal closed (finished or dropped)
//! takes no more records: one arriving late is committed on its own. A call whose future is
//! dropped (its caller went away) still submits what its journal held.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use sigil_audit::{AuditError, AuditSink, NewRecord, Pending};
use sigil_policy::Decision;

use super::{Check, Enforcer, Subject};
use crate::events::{Event, Events};

impl Enforcer {
    /// Opens the journal of the call `call_id`: until it is finished or dropped, the records
    /// of checks naming that call wait in it (see [`CallJournal`]).
    pub(crate) fn open_journal(&self, call_id: &str) -> CallJournal<'_> {
        CallJournal::open(
            &self.journals,
            call_id,
            self.audit.clone(),
            self.events.clone(),
        )
    }

    /// Commits `record`, publishing `event` with its sequence number once it is: at once, or
    /// in the journal of the call it names, flushed first when `effect` says the decision lets
    /// something observable happen.
    pub(super) async fn commit(
        &self,
        record: NewRecord,
        event: Option<Event>,
        effect: bool,
    ) -> Result<(), AuditError> {
        match self.route(record, event, effect) {
            Route::Held => Ok(()),
            Route::Flush(journal) => journal.flush().await,
            Route::Alone(record, event) => {
                let seq = self.audit.submit(record).await?;
                publish_at(&self.events, event, seq);
                Ok(())
            }
        }
    }

    /// [`Enforcer::commit`] for threads outside an async runtime.
    pub(super) fn commit_blocking(
        &self,
        record: NewRecord,
        event: Option<Event>,
        effect: bool,
    ) -> Result<(), AuditError> {
        match self.route(record, event, effect) {
            Route::Held => Ok(()),
            Route::Flush(journal) => journal.flush_blocking(),
            Route::Alone(record, event) => {
                let seq = self.audit.submit(record).wait()?;
                publish_at(&self.events, event, seq);
                Ok(())
            }
        }
    }

    /// Where `record` goes: into the open journal of the call it names (to be flushed now when
    /// `effect`), or to the log on its own.
    fn route(&self, record: NewRecord, event: Option<Event>, effect: bool) -> Route {
        let journal = record
            .call_id
            .as_deref()
            .and_then(|call_id| self.journals.get(call_id));
        let Some(journal) = journal else {
            return Route::Alone(record, event);
        };
        match journal.add(record, event) {
            None if effect => Route::Flush(journal),
            None => Route::Held,
            Some((record, event)) => Route::Alone(record, event),
        }
    }
}

/// What [`Enforcer::route`] decided for a record.
#[allow(
    clippy::large_enum_variant,
    reason = "returned and matched at once; boxing would cost every record an allocation"
)]
enum Route {
    /// It waits in its call's journal.
    Held,
    /// It joined its call's journal, which must be committed now.
    Flush(Arc<Journal>),
    /// It is committed on its own.
    Alone(NewRecord, Option<Event>),
}

/// Publishes `event`, once its record is committed as `seq`.
fn publish_at(events: &Events, event: Option<Event>, seq: u64) {
    if let Some(mut event) = event {
        if let Event::Decision { seq: at, .. } = &mut event {
            *at = seq;
        }
        events.publish(event);
    }
}

/// Whether `decision` lets a plugin do something observable outside itself: an allowed host
/// call other than a read (`fs.read`, `kv.read`). Calling into a plugin is not one (its own
/// host calls are decided as they come), nor is a deny. A capability this list does not know is
/// an effect, so a new kind of host call is committed before it proceeds until it is listed.
pub(crate) fn is_effect(check: &Check<'_>, decision: &Decision) -> bool {
    const READS: [&str; 2] = ["fs.read", "kv.read"];
    let action = check.capability.as_str().split(':').next().unwrap_or("");
    matches!(check.subject, Subject::Plugin(_)) && decision.is_allowed() && !READS.contains(&action)
}

/// The journals of the calls in flight, by call id.
#[derive(Debug, Default)]
pub(super) struct Journals {
    open: Mutex<HashMap<String, Arc<Journal>>>,
}

impl Journals {
    pub(super) fn get(&self, call_id: &str) -> Option<Arc<Journal>> {
        self.map().get(call_id).cloned()
    }

    fn insert(&self, call_id: &str, journal: Arc<Journal>) {
        self.map().insert(call_id.to_string(), journal);
    }

    fn remove(&self, call_id: &str) {
        self.map().remove(call_id);
    }

    /// The map; a panic elsewhere cannot leave it torn (each change is one insert or remove).
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Journal>>> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A record waiting in a journal, with the event to publish once it is committed.
#[derive(Debug)]
struct Waiting {
    record: NewRecord,
    event: Option<Event>,
}

#[derive(Debug, Default)]
struct Buffer {
    waiting: Vec<Waiting>,
    closed: bool,
}

/// The records of one call that wait for a commit.
#[derive(Debug)]
pub(super) struct Journal {
    audit: Arc<dyn AuditSink>,
    events: Events,
    buffer: Mutex<Buffer>,
}

impl Journal {
    /// Adds a record; gives it back, with its event, when the journal is closed, for the caller
    /// to commit alone.
    #[must_use = "a record given back must be committed by the caller"]
    pub(super) fn add(
        &self,
        record: NewRecord,
        event: Option<Event>,
    ) -> Option<(NewRecord, Option<Event>)> {
        let mut buffer = self.lock();
        if buffer.closed {
            return Some((record, event));
        }
        buffer.waiting.push(Waiting { record, event });
        None
    }

    /// Commits what waits, in one transaction, and publishes its events. On failure the records
    /// go back to the front of the journal, so a later commit (the call's last) tries again.
    pub(super) async fn flush(&self) -> Result<(), AuditError> {
        let Some((pending, events)) = self.submit(None, false) else {
            return Ok(());
        };
        let committed = pending.await;
        self.settle(committed, events)
    }

    /// [`Journal::flush`] for threads outside an async runtime.
    pub(super) fn flush_blocking(&self) -> Result<(), AuditError> {
        let Some((pending, events)) = self.submit(None, false) else {
            return Ok(());
        };
        let committed = pending.wait();
        self.settle(committed, events)
    }

    /// Submits what waits, with `last` after it; with `close`, the journal takes no more.
    fn submit(&self, last: Option<NewRecord>, close: bool) -> Option<(Pending, Vec<Waiting>)> {
        let mut buffer = self.lock();
        buffer.closed |= close;
        if buffer.waiting.is_empty() && last.is_none() {
            return None;
        }
        let mut waiting = std::mem::take(&mut buffer.waiting);
        if let Some(record) = last {
            waiting.push(Waiting {
                record,
                event: None,
            });
        }
        // Records are cloned for the writer so that a failed commit can put them back; they are
        // small, and a commit costs far more.
        let records = waiting.iter().map(|w| w.record.clone()).collect();
        // Submitted under the lock: two flushes of one journal reach the log in the order they
        // took their records.
        Some((self.audit.submit_all(records), waiting))
    }

    fn settle(
        &self,
        committed: Result<u64, AuditError>,
        waiting: Vec<Waiting>,
    ) -> Result<(), AuditError> {
        match committed {
            Ok(first) => {
                for (seq, waiting) in (first..).zip(waiting) {
                    publish_at(&self.events, waiting.event, seq);
                }
                Ok(())
            }
            Err(error) => {
                let mut buffer = self.lock();
                let later = std::mem::take(&mut buffer.waiting);
                buffer.waiting = waiting;
                buffer.waiting.extend(later);
                Err(error)
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Buffer> {
        self.buffer.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The journal of one tool call, opened by the dispatch ([`super::Enforcer::open_journal`]).
/// Records the enforcer makes for the call id wait in it until an effect or the end of the call
/// needs them committed.
#[derive(Debug)]
pub(crate) struct CallJournal<'a> {
    journals: &'a Journals,
    call_id: String,
    journal: Arc<Journal>,
    finished: bool,
}

impl<'a> CallJournal<'a> {
    pub(super) fn open(
        journals: &'a Journals,
        call_id: &str,
        audit: Arc<dyn AuditSink>,
        events: Events,
    ) -> CallJournal<'a> {
        let journal = Arc::new(Journal {
            audit,
            events,
            buffer: Mutex::default(),
        });
        journals.insert(call_id, journal.clone());
        CallJournal {
            journals,
            call_id: call_id.to_string(),
            journal,
            finished: false,
        }
    }

    /// Adds a record of the call (a hook's decision), to be committed with the rest; `event` is
    /// published once it is.
    pub(crate) fn add(&self, record: NewRecord, event: Option<Event>) {
        if let Some((record, _)) = self.journal.add(record, event) {
            // Not reached while the journal is held: only finishing or dropping closes it.
            drop(self.journal.audit.submit(record));
        }
    }

    /// Commits what waits now: before the call does something observable outside itself.
    ///
    /// # Errors
    /// The audit log's, when the commit fails; the records stay in the journal.
    pub(crate) async fn flush(&self) -> Result<(), AuditError> {
        self.journal.flush().await
    }

    /// Closes the journal and commits what waits, then `outcome`, in one transaction.
    ///
    /// # Errors
    /// The audit log's, when the commit fails: the call must not report success.
    pub(crate) async fn finish(mut self, outcome: Option<NewRecord>) -> Result<(), AuditError> {
        self.finished = true;
        self.journals.remove(&self.call_id);
        let Some((pending, waiting)) = self.journal.submit(outcome, true) else {
            return Ok(());
        };
        let committed = pending.await;
        self.journal.settle(committed, waiting)
    }
}

impl Drop for CallJournal<'_> {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        // The call was abandoned (its caller went away): what it recorded is still written.
        self.journals.remove(&self.call_id);
        if let Some((pending, _)) = self.journal.submit(None, true) {
            drop(pending);
        }
    }
}
