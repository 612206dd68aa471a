//! The single writer thread and the [`Pending`] handle callers wait on.
//!
//! Callers push jobs onto an unbounded channel. The writer blocks for the
//! first job, gathers whatever else is queued or arriving (see [`gather`], up
//! to [`MAX_BATCH`]), writes the lot in one transaction and commits once, so
//! the cost of the fsync is shared by every record in the batch (group
//! commit). Only after the commit returns does each caller learn its sequence
//! number.
//!
//! The chain MACs are computed here, on the writer thread, record by record as
//! each is inserted: each needs the one before it. The canonical JSON they
//! cover is serialised by the submitters. Checkpoints are signed here too, in
//! the transaction of the batch they cover (see [`crate::checkpoint`]): the
//! periodic ones every [`CHECKPOINT_EVERY`](crate::CHECKPOINT_EVERY) records,
//! those asked for through [`Writer::checkpoint`], and one at shutdown if
//! records were added since the newest.

use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, mpsc};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, JoinHandle, Thread};
use std::time::{Duration, Instant, SystemTime};

use rusqlite::Connection;

use crate::checkpoint::Checkpoint;
use crate::filter::unix_ms;
use crate::keys::Keys;
use crate::store::{self, Queued, SignHead};
use crate::{AuditError, Durability, NewRecord};

/// The most records written in one transaction. Large enough that the
/// per-commit fsync is amortised away, small enough that a batch's
/// transaction stays short and its memory bounded.
pub(crate) const MAX_BATCH: usize = 4096;

/// How long the writer waits for a further record before it starts a batch.
pub(crate) const ARRIVAL_GAP: Duration = Duration::from_micros(50);

/// The longest the writer keeps gathering one batch while records keep arriving.
pub(crate) const MAX_GATHER: Duration = Duration::from_millis(1);

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

/// One record of a [`Job::Records`]: its submit time, content and canonical JSON.
#[derive(Debug)]
struct Item {
    time_ms: i64,
    record: NewRecord,
    canonical_json: Vec<u8>,
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

/// Owns the writer thread and the sending end of its queue.
#[derive(Debug)]
pub(crate) struct Writer {
    path: Arc<PathBuf>,
    queue: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<Result<(), AuditError>>>,
}

impl Writer {
    /// Starts the writer thread on `conn`.
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
        let (queue, jobs) = mpsc::channel();
        let thread_path = Arc::clone(&path);
        // Waiting for stragglers only pays when a commit costs an fsync.
        let gap = match durability {
            Durability::Disk => ARRIVAL_GAP,
            Durability::Process => Duration::ZERO,
        };
        let thread = thread::Builder::new()
            .name("sigil-audit-writer".to_owned())
            .spawn(move || run(conn, &thread_path, &keys, &jobs, gap))
            .map_err(|e| AuditError::Unusable {
                path: (*path).clone(),
                reason: format!("cannot start the writer thread: {e}"),
            })?;
        Ok(Writer {
            path,
            queue: Some(queue),
            thread: Some(thread),
        })
    }

    /// Stamps `records` with the current time and queues them, to be written in one
    /// transaction; the `Pending` resolves to the first one's `seq`.
    pub fn submit(&self, records: Vec<NewRecord>) -> Pending {
        if records.is_empty() {
            return Pending::ready(Arc::clone(&self.path), Ok(0));
        }
        let time_ms = unix_ms(SystemTime::now());
        // Serialising here spreads that work over the submitting threads
        // instead of the one writer. It also refuses what cannot be stored
        // before it joins a batch, so one bad record cannot fail its neighbours.
        let mut items = Vec::with_capacity(records.len());
        for record in records {
            let mut canonical_json = Vec::with_capacity(384);
            match record.canonical(time_ms) {
                Ok(canonical) => canonical.write_json(&mut canonical_json),
                Err(e) => return Pending::failed(Arc::clone(&self.path), e),
            }
            items.push(Item {
                time_ms,
                record,
                canonical_json,
            });
        }
        let (reply, rx) = oneshot::channel();
        let job = Job::Records { items, reply };
        // If the writer is gone the job (and its reply sender) is dropped,
        // which resolves the Pending to `WriterStopped`.
        if let Some(queue) = &self.queue {
            let _ = queue.send(job);
        }
        Pending {
            rx,
            path: Arc::clone(&self.path),
            polled: false,
        }
    }

    /// Asks the writer to sign a checkpoint of the head once everything queued
    /// before has committed, and waits for it.
    ///
    /// # Errors
    ///
    /// The batch's error, or [`AuditError::WriterStopped`].
    pub fn checkpoint(&self) -> Result<Checkpoint, AuditError> {
        let stopped = || AuditError::WriterStopped {
            path: (*self.path).clone(),
        };
        let (reply, rx) = oneshot::channel();
        let queue = self.queue.as_ref().ok_or_else(stopped)?;
        queue
            .send(Job::Checkpoint { reply })
            .map_err(|_| stopped())?;
        rx.recv().unwrap_or_else(|_| Err(stopped()))
    }

    /// Closes the queue, lets the writer commit everything already queued,
    /// and joins it. Later calls do nothing.
    ///
    /// # Errors
    ///
    /// [`AuditError::WriterPanicked`] if the thread panicked, or the error
    /// from closing the connection.
    pub fn shutdown(&mut self) -> Result<(), AuditError> {
        drop(self.queue.take());
        match self.thread.take() {
            None => Ok(()),
            Some(thread) => thread.join().unwrap_or_else(|_| {
                Err(AuditError::WriterPanicked {
                    path: (*self.path).clone(),
                })
            }),
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            tracing::error!(path = %self.path.display(), error = %e, "audit writer shut down badly");
        }
    }
}

/// Adds queued jobs to `batch`, which holds the first, until [`MAX_BATCH`].
///
/// Besides what is already queued, it takes what arrives while submissions
/// keep coming: it waits up to `gap` ([`ARRIVAL_GAP`] when commits fsync) for
/// each next job, and stops after [`MAX_GATHER`] in all. Without that, a burst
/// that starts while the writer is idle pays for a commit of its first record
/// alone, and a second commit for the rest. A lone record waits `gap` longer,
/// which is small beside the fsync it is about to wait for. With a zero `gap`
/// only what is already queued joins the batch.
fn gather(jobs: &mpsc::Receiver<Job>, batch: &mut Vec<Job>, gap: Duration) {
    let deadline = Instant::now() + MAX_GATHER;
    while batch.len() < MAX_BATCH {
        match jobs.try_recv() {
            Ok(job) => batch.push(job),
            Err(mpsc::TryRecvError::Disconnected) => return,
            Err(mpsc::TryRecvError::Empty) => {
                if gap.is_zero() {
                    return;
                }
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return;
                }
                match jobs.recv_timeout(left.min(gap)) {
                    Ok(job) => batch.push(job),
                    Err(_) => return,
                }
            }
        }
    }
}

/// The writer thread: batch, write, commit, reply; until the queue is closed
/// and drained. Then a last checkpoint, if records were added since the newest.
fn run(
    mut conn: Connection,
    path: &Path,
    keys: &Keys,
    jobs: &mpsc::Receiver<Job>,
    gap: Duration,
) -> Result<(), AuditError> {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    // `recv` keeps returning queued jobs after every sender is gone, so
    // nothing submitted before shutdown is dropped.
    while let Ok(first) = jobs.recv() {
        batch.push(first);
        gather(jobs, &mut batch, gap);
        let mut sign_head = SignHead::No;
        let mut queued: Vec<Queued<'_>> = Vec::with_capacity(batch.len());
        for job in &batch {
            match job {
                Job::Records { items, .. } => {
                    queued.extend(items.iter().map(|item| Queued {
                        time_ms: item.time_ms,
                        record: &item.record,
                        canonical_json: &item.canonical_json,
                    }));
                }
                Job::Checkpoint { .. } => sign_head = SignHead::Yes,
            }
        }
        let records = queued.len();
        let result = store::write_batch(&mut conn, path, keys, &queued, sign_head);
        drop(queued);
        match result {
            Ok(written) => {
                tracing::trace!(path = %path.display(), first_seq = written.first, records, "audit batch committed");
                let mut next = written.first;
                for job in batch.drain(..) {
                    // A caller that dropped its Pending no longer cares.
                    match job {
                        Job::Records { items, reply } => {
                            let _ = reply.send(Ok(next));
                            next += items.len() as u64;
                        }
                        Job::Checkpoint { reply } => {
                            let _ = reply.send(written.checkpoint.clone().ok_or_else(|| {
                                AuditError::CheckpointFailed {
                                    path: path.to_owned(),
                                    reason: "the batch signed no checkpoint".to_owned(),
                                }
                            }));
                        }
                    }
                }
            }
            Err(e) => {
                tracing::error!(path = %path.display(), records, error = %e, "audit batch failed");
                for job in batch.drain(..) {
                    match job {
                        Job::Records { reply, .. } => {
                            let _ = reply.send(Err(e.clone()));
                        }
                        Job::Checkpoint { reply } => {
                            let _ = reply.send(Err(e.clone()));
                        }
                    }
                }
            }
        }
    }
    match store::checkpoint_if_behind(&mut conn, path, keys) {
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
