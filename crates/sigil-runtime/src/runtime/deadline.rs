//! The one guard every piece of plugin code runs under (a tool's steps, a hook): a deadline
//! that holds whatever the step does, and a panic turned into an error.
//!
//! `tokio::time::timeout` can only end a future that yields. A step that blocks inside a poll
//! (a compiled-in plugin reading a FIFO with no writer, a lock held forever) keeps its worker
//! thread, so the timer that would end it may never run, and a result that finally arrives
//! after the deadline would still be taken. Two rules close that:
//!
//! - Where a step runs depends on what its code is ([`Confinement::of`]). Compiled-in plugins
//!   are ordinary Rust and may block, so each of their steps runs on a thread of the blocking
//!   pool while the caller's task waits for it under the deadline: the runtime's worker threads
//!   stay free, and the deadline fires on time. Directory plugins' steps are their tiers' host
//!   code, which never blocks (a wasm guest yields at every epoch tick, a process plugin is
//!   spoken to over async I/O), and run on the caller's task.
//! - A result that arrives after the deadline is a timeout all the same.
//!
//! A thread cannot be killed: a step blocked in a system call keeps its pool thread until the
//! call returns. Its caller has had its timeout by then, and the step is told to stop (its
//! future is dropped) at its next await.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use tracing::Instrument;

use crate::manager::{PluginEntry, Source};
use crate::tool::ToolError;

/// Where a plugin's step runs while its caller waits for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Confinement {
    /// On the caller's task: the tier's host code never blocks a thread.
    Task,
    /// On a blocking-pool thread of its own: compiled-in code can block.
    Thread,
}

impl Confinement {
    /// The confinement of `entry`'s steps.
    pub(crate) fn of(entry: &PluginEntry) -> Confinement {
        match entry.source() {
            Source::Builtin => Confinement::Thread,
            Source::Directory(_) => Confinement::Task,
        }
    }
}

/// How a guarded step failed.
#[derive(Debug)]
pub(crate) enum Fault {
    /// It returned an error.
    Failed(ToolError),
    /// It panicked.
    Panicked,
    /// Its deadline passed first.
    TimedOut,
}

/// How a step ended.
enum Ended<T> {
    Returned(Result<T, ToolError>),
    Panicked,
    TimedOut,
}

/// Runs `step` confined as `confinement` says, for at most `deadline`, with panics caught: a
/// plugin fault never takes the host down, and a step that overruns its deadline ends whatever
/// it does.
pub(crate) async fn guard<T, F>(
    deadline: Duration,
    confinement: Confinement,
    step: F,
) -> Result<T, Fault>
where
    T: Send + 'static,
    F: Future<Output = Result<T, ToolError>> + Send + 'static,
{
    match within(deadline, confinement, step).await {
        Ended::Returned(result) => result.map_err(Fault::Failed),
        Ended::Panicked => Err(Fault::Panicked),
        Ended::TimedOut => Err(Fault::TimedOut),
    }
}

async fn within<T, F>(deadline: Duration, confinement: Confinement, step: F) -> Ended<T>
where
    T: Send + 'static,
    F: Future<Output = Result<T, ToolError>> + Send + 'static,
{
    let started = Instant::now();
    let step = AssertUnwindSafe(step.in_current_span()).catch_unwind();
    let ended = match confinement {
        Confinement::Task => match tokio::time::timeout(deadline, step).await {
            Err(_) => Ended::TimedOut,
            Ok(Err(_panic)) => Ended::Panicked,
            Ok(Ok(result)) => Ended::Returned(result),
        },
        Confinement::Thread => on_thread(deadline, step).await,
    };
    // `timeout` polls the step before its timer, so a step that held its thread past the
    // deadline and then returned would otherwise count as on time.
    match ended {
        Ended::Returned(_) if started.elapsed() > deadline => Ended::TimedOut,
        ended => ended,
    }
}

async fn on_thread<T, F>(deadline: Duration, step: F) -> Ended<T>
where
    T: Send + 'static,
    F: Future<Output = Result<Result<T, ToolError>, Box<dyn std::any::Any + Send>>>
        + Send
        + 'static,
{
    let handle = tokio::runtime::Handle::current();
    // Dropped when the wait ends for any reason (returned, deadline, caller gone), which tells
    // the step to stop at its next await.
    let (_stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::task::spawn_blocking(move || {
        handle.block_on(async move {
            tokio::select! {
                biased;
                ended = step => Some(ended),
                _ = stopped => None,
            }
        })
    });
    match tokio::time::timeout(deadline, task).await {
        Err(_) => {
            tracing::warn!(
                deadline_ms = deadline.as_millis() as u64,
                "a compiled-in plugin's step outlived its deadline; it stops at its next await"
            );
            Ended::TimedOut
        }
        Ok(Err(join)) if join.is_panic() => Ended::Panicked,
        // Not reached: the stop signal is only sent once this wait has ended.
        Ok(Err(_)) | Ok(Ok(None)) => Ended::TimedOut,
        Ok(Ok(Some(Err(_panic)))) => Ended::Panicked,
        Ok(Ok(Some(Ok(result)))) => Ended::Returned(result),
    }
}
