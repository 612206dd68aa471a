//! Where records are committed, the writer thread, and the [`Pending`] handle callers wait on.
//!
//! One connection writes: the writer's, shared behind a mutex. A batch is written in one
//! transaction and committed once, and only after the commit returns does each of its
//! submitters learn its sequence number. Records are committed in one of two places:
//!
//! - **On the submitting thread**, with [`Durability::Process`], when the writer thread is
//!   idle: nothing is waiting for it ([`Shared::in_flight`] is zero), its last batch was a lone
//!   submit ([`Shared::contended`] is false), and nobody holds the connection. A commit that
//!   does not fsync costs tens of microseconds, no more than handing the record to another
//!   thread and back. The submit returns a [`Pending`] that has already resolved. (The
//!   write-ahead log is copied into the database by a checkpoint thread of its own,
//!   [`checkpoint_wal`], so a commit does not pay that copy's fsync, but when the log reaches
//!   16 MiB under a load that never pauses.)
//! - **On the writer thread**, otherwise: always with [`Durability::Disk`], where a commit waits
//!   milliseconds for the disk and callers are often async tasks that must not block for that
//!   long; and with `Process` when the connection is busy, jobs are queued (so one thread's
//!   records keep the order it submitted them in), or submitters are arriving together (so they
//!   share one commit). Callers push jobs onto an unbounded channel;
//!   the writer blocks for the first, takes whatever else is queued (up to [`MAX_BATCH`] jobs),
//!   and writes the lot in one transaction. Nothing waits for further arrivals: records that
//!   arrive while a commit is in progress queue up and form the next batch, so under load the
//!   cost of each commit is shared by every record that arrived during the one before (group
//!   commit), and a lone record is committed at once.
//!
//! Checkpoint requests ([`Writer::checkpoint`]) always go through the writer thread.
//!
//! The chain MACs are computed by whichever thread commits, record by record as each is
//! inserted: each needs the one before it, and the head it continues from is read inside the
//! transaction. The canonical JSON they cover is serialised by the submitters before they
//! queue or commit. Checkpoints are signed in the transaction of the batch they cover (see
//! [`crate::checkpoint`]): the periodic ones every [`CHECKPOINT_EVERY`](crate::CHECKPOINT_EVERY)
//! records, those asked for through [`Writer::checkpoint`], and one at shutdown if records were
//! added since the newest.
//!
//! At shutdown the queue is closed; the writer thread commits everything queued, signs the
//! shutdown checkpoint, takes the connection out of the mutex and closes it. A submit after that
//! resolves to [`AuditError::WriterStopped`].

use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError, mpsc};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, JoinHandle, Thread};
use std::time::{Duration, SystemTime};

use rusqlite::Connection;

use crate::checkpoint::Checkpoint;
use crate::filter::unix_ms;
use crate::keys::Keys;
use crate::store::{self, Queued, SignHead, Written};
use crate::{AuditError, Durability, NewRecord};

/// The most jobs (each one submit: a record, or the records of one `submit_all`) the writer
/// thread writes in one transaction. Large enough that the per-commit fsync is amortised
/// away, small enough that a batch's transaction stays short and its memory bounded.
pub(crate) const MAX_BATCH: usize = 4096;

type Reply = Result<u64, AuditError>;

/// One submitted record, or a request for a checkpoint, on its way to the writer.
#[derive(Debug)]
#[allow(
    clippy::large_enum_variant,
    reason = "records are the hot path; boxing them would cost an allocation each, for the \
              sake of rare checkpoint requests"
)]
enum Job {
    /// Records written in one transaction, in order; the reply is the first one's `seq`.
    Records {
        items: Vec<Item>,
        reply: oneshot::Sender<Reply>,
    },
    Checkpoint {
        reply: oneshot::Sender<Result<Checkpoint, AuditError>>,
    },
}

/// One record of a [`Job::Records`]: its submit time, content, canonical JSON and `steps`
/// column.
#[derive(Debug)]
struct Item {
    time_ms: i64,
    record: NewRecord,
    canonical_json: Vec<u8>,
    steps_json: Option<String>,
}

/// The outcome of a submitted record: its sequence number once its batch has
/// committed, or the error that failed the batch.
///
/// Await it in async code, or call [`Pending::wait`] from a plain thread.
/// Dropping it does not cancel the write; the record is still committed.
#[must_use = "a record's durability is only known once its Pending resolves"]
pub struct Pending {
    rx: oneshot::Receiver<Reply>,
    path: Arc<PathBuf>,
    polled: bool,
}

impl fmt::Debug for Pending {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pending")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Pending {
    /// A `Pending` that has already failed with `error`.
    pub(crate) fn failed(path: Arc<PathBuf>, error: AuditError) -> Pending {
        Pending::ready(path, Err(error))
    }

    /// A `Pending` that has already resolved.
    pub(crate) fn ready(path: Arc<PathBuf>, reply: Reply) -> Pending {
        let (tx, rx) = oneshot::channel();
        // The receiver is alive right here, so this cannot fail.
        let _ = tx.send(reply);
        Pending {
            rx,
            path,
            polled: false,
        }
    }

    /// Blocks the current thread until the record is committed or its batch failed.
    ///
    /// Safe to call from a thread that runs an async executor (it blocks that
    /// thread, but never panics).
    ///
    /// # Errors
    ///
    /// The batch's error ([`AuditError::Write`] and the like), or
    /// [`AuditError::WriterStopped`] if the writer went away first.
    pub fn wait(self) -> Result<u64, AuditError> {
        if self.polled {
            // The channel's blocking receive must not follow an async poll,
            // so finish the way we started.
            return block_on(self);
        }
        let Pending { rx, path, .. } = self;
        rx.recv().unwrap_or_else(|_| {
            Err(AuditError::WriterStopped {
                path: (*path).clone(),
            })
        })
    }
}

impl Future for Pending {
    type Output = Result<u64, AuditError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.polled = true;
        let path = Arc::clone(&self.path);
        Pin::new(&mut self.rx).poll(cx).map(|received| {
            received.unwrap_or_else(|_| {
                Err(AuditError::WriterStopped {
                    path: (*path).clone(),
                })
            })
        })
    }
}

/// Wakes a parked thread.
struct ThreadWaker(Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

fn block_on<F: Future + Unpin>(mut future: F) -> F::Output {
    let waker = Waker::from(Arc::new(ThreadWaker(thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(output) = Pin::new(&mut future).poll(&mut cx) {
            return output;
        }
        thread::park();
    }
}

/// Where a submitter's records are committed; fixed by the log's [`Durability`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CommitOn {
    /// On the submitting thread when the writer is idle, else on the writer thread: commits
    /// are cheap ([`Durability::Process`]).
    CallerWhenIdle,
    /// Always on the writer thread: commits wait for an fsync ([`Durability::Disk`]).
    WriterThread,
}

/// How many transactions were committed on submitting threads and on the writer thread.
///
/// For tests and diagnostics, through [`AuditLog::commits`](crate::AuditLog::commits).
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Commits {
    /// Batches committed by the thread that submitted them.
    pub on_callers: u64,
    /// Batches committed by the writer thread.
    pub on_writer: u64,
}

/// What the submitters and the writer thread share.
struct Shared {
    path: Arc<PathBuf>,
    keys: Arc<Keys>,
    /// The writer's connection; `None` once the writer thread has closed it at shutdown.
    conn: Mutex<Option<Connection>>,
    /// Jobs sent to the writer thread whose batch has not finished yet. Raised before a job is
    /// sent, lowered once its batch has committed (or failed) and before its submitters are
    /// answered. While it is above zero no submitter commits on its own thread, so a record
    /// cannot overtake one its thread queued before it.
    in_flight: AtomicUsize,
    /// Whether the writer thread's last batch had company: more than one job, or jobs queued
    /// behind it. While it has, submitters queue even when the writer is idle. Under a steady
    /// load of submitters that each wait for their record, the writer is idle for a moment after
    /// every batch; the first submitter back would commit alone on its thread while the others
    /// queue behind it, two commits where the writer alone makes one (measured: about half the
    /// throughput of 16 such threads). A batch of one job with nothing behind it clears it.
    contended: AtomicBool,
    /// Transactions committed on submitting threads, for [`Commits`].
    on_callers: AtomicU64,
    /// Transactions committed on the writer thread, for [`Commits`].
    on_writer: AtomicU64,
    /// Transactions committed anywhere.
    all_commits: AtomicU64,
    /// Wakes the thread that copies the write-ahead log into the database; `None` once it is
    /// told to stop.
    wal: Mutex<Option<mpsc::SyncSender<()>>>,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("path", &self.path)
            .field("in_flight", &self.in_flight.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// Every how many commits the write-ahead log is copied into the database
/// ([`checkpoint_wal`]). A commit adds a few pages to the log; this keeps it to a few
/// megabytes.
const WAL_CHECKPOINT_EVERY: u64 = 256;

/// The size of the write-ahead log, in pages (16 MiB of 4 KiB pages), at which a commit copies
/// what the checkpoint thread has not.
const WAL_BACKSTOP_PAGES: i64 = 4096;

impl Shared {
    /// Counts a commit in `counter`; every [`WAL_CHECKPOINT_EVERY`] commits in all, wakes the
    /// WAL checkpointer.
    fn committed(&self, counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
        let total = self.all_commits.fetch_add(1, Ordering::Relaxed) + 1;
        if total.is_multiple_of(WAL_CHECKPOINT_EVERY)
            && let Some(wal) = self
                .wal
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .as_ref()
        {
            // Full means a wake-up is already pending: this commit's pages go with it.
            let _ = wal.try_send(());
        }
    }

    /// Locks the connection.
    ///
    /// A poisoned lock is used as it is, here and in [`Shared::try_lock`]: a panic while the
    /// connection was held can at worst leave a transaction open, and every write
    /// ([`store::write_batch`], [`store::checkpoint_if_behind`]) rolls that back before it starts.
    fn lock(&self) -> MutexGuard<'_, Option<Connection>> {
        self.conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The connection if nobody holds it; see [`Shared::lock`] for a poisoned lock.
    fn try_lock(&self) -> Option<MutexGuard<'_, Option<Connection>>> {
        match self.conn.try_lock() {
            Ok(guard) => Some(guard),
            Err(TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        }
    }

    /// Commits `items` on the calling thread if nothing is waiting for the writer thread, its
    /// last batch was alone ([`Shared::contended`]) and nobody holds the connection. `None` if
    /// it did not try (the items are to be queued).
    fn commit_here(&self, items: &[Item]) -> Option<Reply> {
        // `in_flight` first: the writer sets `contended` before it lowers `in_flight`.
        if self.in_flight.load(Ordering::Acquire) != 0 || self.contended.load(Ordering::Relaxed) {
            return None;
        }
        let mut guard = self.try_lock()?;
        // After shutdown there is no connection; queueing then reports the writer stopped.
        let conn = guard.as_mut()?;
        let queued: Vec<Queued<'_>> = items.iter().map(Item::queued).collect();
        let result = store::write_batch(conn, &self.path, &self.keys, &queued, SignHead::No);
        drop(guard);
        Some(match result {
            Ok(written) => {
                self.committed(&self.on_callers);
                tracing::trace!(path = %self.path.display(), first_seq = written.first, records = items.len(), "audit batch committed on the submitting thread");
                Ok(written.first)
            }
            Err(e) => {
                tracing::error!(path = %self.path.display(), records = items.len(), error = %e, "audit batch failed");
                Err(e)
            }
        })
    }

    /// Writes the records of `batch` in one transaction (with a checkpoint of the new head if
    /// one of its jobs asks for it), on the writer thread.
    fn write(&self, batch: &[Job]) -> Result<Written, AuditError> {
        let mut sign_head = SignHead::No;
        let mut queued: Vec<Queued<'_>> = Vec::with_capacity(batch.len());
        for job in batch {
            match job {
                Job::Records { items, .. } => queued.extend(items.iter().map(Item::queued)),
                Job::Checkpoint { .. } => sign_head = SignHead::Yes,
            }
        }
        let mut guard = self.lock();
        let Some(conn) = guard.as_mut() else {
            // Only this thread takes the connection out, after its last batch.
            return Err(AuditError::WriterStopped {
                path: (*self.path).clone(),
            });
        };
        let result = store::write_batch(conn, &self.path, &self.keys, &queued, sign_head);
        drop(guard);
        match &result {
            Ok(written) => {
                self.committed(&self.on_writer);
                tracing::trace!(path = %self.path.display(), first_seq = written.first, records = queued.len(), "audit batch committed");
            }
            Err(e) => {
                tracing::error!(path = %self.path.display(), records = queued.len(), error = %e, "audit batch failed");
            }
        }
        result
    }
}

impl Item {
    /// Serialises `record`'s canonical JSON and its `steps` column.
    ///
    /// # Errors
    ///
    /// [`AuditError::InvalidRecord`] if the record cannot be stored.
    fn new(record: NewRecord, time_ms: i64) -> Result<Item, AuditError> {
        let mut canonical_json = Vec::with_capacity(384);
        record.canonical(time_ms)?.write_json(&mut canonical_json);
        let steps_json = store::steps_json(&record.steps)?;
        Ok(Item {
            time_ms,
            record,
            canonical_json,
            steps_json,
        })
    }

    fn queued(&self) -> Queued<'_> {
        Queued {
            time_ms: self.time_ms,
            record: &self.record,
            canonical_json: &self.canonical_json,
            steps_json: self.steps_json.as_deref(),
        }
    }
}

/// Owns the writer thread, the sending end of its queue, and what it shares with submitters.
#[derive(Debug)]
pub(crate) struct Writer {
    shared: Arc<Shared>,
    commit_on: CommitOn,
    queue: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<Result<(), AuditError>>>,
    wal_thread: Option<JoinHandle<()>>,
}

impl Writer {
    /// Starts the writer thread; `conn` becomes the connection every commit goes through.
    ///
    /// # Errors
    ///
    /// [`AuditError::Unusable`] if the thread cannot be started.
    pub fn spawn(
        conn: Connection,
        path: Arc<PathBuf>,
        keys: Arc<Keys>,
        durability: Durability,
    ) -> Result<Writer, AuditError> {
        let unusable = |reason: String| AuditError::Unusable {
            path: (*path).clone(),
            reason,
        };
        // SQLite copies the log into the database inside whichever commit crosses its threshold
        // (1,000 pages by default), fsyncing on that committer's thread: a caller's, with
        // `Process`. A thread of its own does the copying instead, beside the commits. The
        // threshold stays, raised, as a backstop: a checkpoint that runs beside commits cannot
        // restart the log while they keep coming, so under a load that never pauses the log
        // would grow; at the threshold a commit finishes the copy (little is left by then) and
        // the log restarts.
        conn.pragma_update(None, "wal_autocheckpoint", WAL_BACKSTOP_PAGES)
            .map_err(|e| unusable(format!("cannot configure checkpoints: {e}")))?;
        let checkpointer = Connection::open(&*path)
            .and_then(|c| c.busy_timeout(Duration::from_secs(5)).map(|()| c))
            .map_err(|e| unusable(format!("cannot open the checkpoint connection: {e}")))?;
        let (wal, wake) = mpsc::sync_channel(1);
        let wal_path = Arc::clone(&path);
        let wal_thread = thread::Builder::new()
            .name("sigil-audit-wal".to_owned())
            .spawn(move || checkpoint_wal(&checkpointer, &wal_path, &wake))
            .map_err(|e| unusable(format!("cannot start the checkpoint thread: {e}")))?;
        let (queue, jobs) = mpsc::channel();
        let shared = Arc::new(Shared {
            path: Arc::clone(&path),
            keys,
            conn: Mutex::new(Some(conn)),
            in_flight: AtomicUsize::new(0),
            contended: AtomicBool::new(false),
            on_callers: AtomicU64::new(0),
            on_writer: AtomicU64::new(0),
            all_commits: AtomicU64::new(0),
            wal: Mutex::new(Some(wal)),
        });
        let commit_on = match durability {
            Durability::Process => CommitOn::CallerWhenIdle,
            Durability::Disk => CommitOn::WriterThread,
        };
        let thread_shared = Arc::clone(&shared);
        let thread = thread::Builder::new()
            .name("sigil-audit-writer".to_owned())
            .spawn(move || run(&thread_shared, &jobs))
            .map_err(|e| AuditError::Unusable {
                path: (*path).clone(),
                reason: format!("cannot start the writer thread: {e}"),
            })?;
        Ok(Writer {
            shared,
            commit_on,
            queue: Some(queue),
            thread: Some(thread),
            wal_thread: Some(wal_thread),
        })
    }

    fn path(&self) -> &Arc<PathBuf> {
        &self.shared.path
    }

    /// Stamps `records` with the current time and writes them in one transaction, on this
    /// thread if the writer is idle and commits are cheap, else through the writer thread; the
    /// `Pending` resolves to the first one's `seq`.
    pub fn submit(&self, records: Vec<NewRecord>) -> Pending {
        if records.is_empty() {
            return Pending::ready(Arc::clone(self.path()), Ok(0));
        }
        let time_ms = unix_ms(SystemTime::now());
        // Serialising here spreads that work over the submitting threads
        // instead of the one writer. It also refuses what cannot be stored
        // before it joins a batch, so one bad record cannot fail its neighbours.
        let items = match records
            .into_iter()
            .map(|record| Item::new(record, time_ms))
            .collect::<Result<Vec<_>, _>>()
        {
            Ok(items) => items,
            Err(e) => return Pending::failed(Arc::clone(self.path()), e),
        };
        if self.commit_on == CommitOn::CallerWhenIdle
            && let Some(reply) = self.shared.commit_here(&items)
        {
            return Pending::ready(Arc::clone(self.path()), reply);
        }
        let (reply, rx) = oneshot::channel();
        // If the writer is gone the job (and its reply sender) is dropped,
        // which resolves the Pending to `WriterStopped`.
        self.send(Job::Records { items, reply });
        Pending {
            rx,
            path: Arc::clone(self.path()),
            polled: false,
        }
    }

    /// Queues `job` for the writer thread, counting it in flight; drops it if the writer is gone.
    fn send(&self, job: Job) {
        let Some(queue) = &self.queue else {
            return;
        };
        self.shared.in_flight.fetch_add(1, Ordering::AcqRel);
        if queue.send(job).is_err() {
            self.shared.in_flight.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// Asks the writer to sign a checkpoint of the head once everything queued
    /// before has committed, and waits for it.
    ///
    /// # Errors
    ///
    /// The batch's error, or [`AuditError::WriterStopped`].
    pub fn checkpoint(&self) -> Result<Checkpoint, AuditError> {
        let (reply, rx) = oneshot::channel();
        self.send(Job::Checkpoint { reply });
        rx.recv().unwrap_or_else(|_| {
            Err(AuditError::WriterStopped {
                path: (**self.path()).clone(),
            })
        })
    }

    /// How many batches were committed where.
    pub fn commits(&self) -> Commits {
        Commits {
            on_callers: self.shared.on_callers.load(Ordering::Relaxed),
            on_writer: self.shared.on_writer.load(Ordering::Relaxed),
        }
    }

    /// Closes the queue, lets the writer commit everything already queued and close the
    /// connection, and joins it. Later calls do nothing.
    ///
    /// # Errors
    ///
    /// [`AuditError::WriterPanicked`] if the thread panicked, or the error
    /// from closing the connection.
    pub fn shutdown(&mut self) -> Result<(), AuditError> {
        drop(self.queue.take());
        let ended = match self.thread.take() {
            None => Ok(()),
            Some(thread) => thread.join().unwrap_or_else(|_| {
                Err(AuditError::WriterPanicked {
                    path: (**self.path()).clone(),
                })
            }),
        };
        // The checkpointer ends once nobody can wake it; closing the writer's connection has
        // already copied the log into the database.
        drop(
            self.shared
                .wal
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take(),
        );
        if let Some(wal_thread) = self.wal_thread.take() {
            let _ = wal_thread.join();
        }
        ended
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            tracing::error!(path = %self.path().display(), error = %e, "audit writer shut down badly");
        }
    }
}

/// The writer thread: take what is queued, write, commit, reply; until the queue is closed
/// and drained. Then a last checkpoint, if records were added since the newest, and the
/// connection is closed.
fn run(shared: &Shared, jobs: &mpsc::Receiver<Job>) -> Result<(), AuditError> {
    let path: &Path = &shared.path;
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    // `recv` keeps returning queued jobs after every sender is gone, so
    // nothing submitted before shutdown is dropped.
    while let Ok(first) = jobs.recv() {
        batch.push(first);
        // Only what is already queued: waiting for more would delay a lone record, and what
        // arrives while this batch commits is the next batch.
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let result = shared.write(&batch);
        let behind = shared
            .in_flight
            .load(Ordering::Acquire)
            .saturating_sub(batch.len());
        shared
            .contended
            .store(batch.len() > 1 || behind > 0, Ordering::Relaxed);
        // Before the replies, so a submitter that waited for its record finds the writer idle.
        shared.in_flight.fetch_sub(batch.len(), Ordering::AcqRel);
        reply(path, batch.drain(..), &result);
    }
    let Some(mut conn) = shared.lock().take() else {
        return Ok(());
    };
    match store::checkpoint_if_behind(&mut conn, path, &shared.keys) {
        Ok(Some(checkpoint)) => {
            tracing::debug!(path = %path.display(), seq = checkpoint.seq, "audit checkpoint signed at shutdown");
        }
        Ok(None) => {}
        Err(e) => {
            tracing::error!(path = %path.display(), error = %e, "no audit checkpoint at shutdown");
        }
    }
    conn.close().map_err(|(_, cause)| AuditError::Write {
        path: path.to_owned(),
        cause: Arc::new(cause),
    })
}

/// The checkpoint thread: each time it is woken, copies what it can of the write-ahead log into
/// the database (`PASSIVE`: it waits for no reader or writer, and commits go on meanwhile), so
/// the log does not grow and no committer pays for the copy. Ends when nobody can wake it.
fn checkpoint_wal(conn: &Connection, path: &Path, wake: &mpsc::Receiver<()>) {
    while wake.recv().is_ok() {
        let copied = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
            Ok((row.get::<_, i64>(1)?, row.get::<_, i64>(2)?))
        });
        match copied {
            Ok((log, done)) => {
                tracing::trace!(path = %path.display(), log, done, "audit write-ahead log copied");
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "audit write-ahead log not copied");
            }
        }
    }
}

/// Answers every job of a batch with its part of `result`.
fn reply(path: &Path, batch: impl Iterator<Item = Job>, result: &Result<Written, AuditError>) {
    let mut next = result.as_ref().map_or(0, |written| written.first);
    // A caller that dropped its Pending no longer cares.
    for job in batch {
        match (job, result) {
            (Job::Records { items, reply }, Ok(_)) => {
                let _ = reply.send(Ok(next));
                next += items.len() as u64;
            }
            (Job::Checkpoint { reply }, Ok(written)) => {
                let _ = reply.send(written.checkpoint.clone().ok_or_else(|| {
                    AuditError::CheckpointFailed {
                        path: path.to_owned(),
                        reason: "the batch signed no checkpoint".to_owned(),
                    }
                }));
            }
            (Job::Records { reply, .. }, Err(e)) => {
                let _ = reply.send(Err(e.clone()));
            }
            (Job::Checkpoint { reply }, Err(e)) => {
                let _ = reply.send(Err(e.clone()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::KeyFiles;

    #[test]
    fn shutdown_commits_what_is_queued_and_a_later_submit_is_told_the_writer_stopped()
    -> Result<(), Box<dyn std::error::Error>> {
        for durability in [Durability::Disk, Durability::Process] {
            let name = durability.name();
            let dir = tempfile::tempdir()?;
            let path = dir.path().join("sigil.db");
            let key_files = KeyFiles::in_dir(&dir.path().join("state"));
            let (conn, keys) = crate::schema::open_writer(&path, &key_files, durability)?;
            let mut writer =
                Writer::spawn(conn, Arc::new(path.clone()), Arc::new(keys), durability)?;
            let pending: Vec<Pending> = (0..20)
                .map(|i| writer.submit(vec![NewRecord::outcome(format!("c{i}"), "ok")]))
                .collect();
            writer.shutdown()?;

            let seqs = pending
                .into_iter()
                .map(Pending::wait)
                .collect::<Result<Vec<_>, _>>()?;
            assert_eq!(seqs, (1..=20).collect::<Vec<_>>(), "{name}");
            assert!(writer.shared.lock().is_none(), "{name}: connection closed");
            let signed: i64 = Connection::open(&path)?.query_row(
                "SELECT MAX(seq) FROM audit_checkpoints",
                [],
                |row| row.get(0),
            )?;
            assert_eq!(signed, 20, "{name}: shutdown checkpoint");

            let late = writer.submit(vec![NewRecord::outcome("late", "ok")]);
            assert!(
                matches!(late.wait(), Err(AuditError::WriterStopped { .. })),
                "{name}"
            );
            assert!(
                matches!(writer.checkpoint(), Err(AuditError::WriterStopped { .. })),
                "{name}"
            );
        }
        Ok(())
    }
}
