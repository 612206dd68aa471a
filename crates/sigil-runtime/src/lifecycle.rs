//! The plugin lifecycle state machine.
//!
//! ```text
//! discovered → validating → loading → running → draining → stopping → stopped
//!                   │           │         │          │           │
//!                   └───────────┴─────────┴──────────┴───────────┴──→ error
//! stopped, error → loading   (restart or reload)
//! ```
//! Every other transition is rejected. A [`Lifecycle`] is shared between threads; each
//! transition is checked and applied under one lock, so of two racing transitions out of the
//! same state exactly one wins.

use std::fmt;
use std::sync::Mutex;

use serde::Serialize;

/// Where a plugin is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Found on disk or compiled in; nothing checked yet.
    Discovered,
    /// Its manifest is being validated.
    Validating,
    /// Its artifact is being loaded by its tier.
    Loading,
    /// Serving calls.
    Running,
    /// Finishing in-flight calls; taking no new ones.
    Draining,
    /// Shutting down.
    Stopping,
    /// Stopped cleanly.
    Stopped,
    /// Failed; the plugin's entry holds the reason.
    Error,
}

impl State {
    /// Every state, in lifecycle order.
    pub const ALL: [State; 8] = [
        State::Discovered,
        State::Validating,
        State::Loading,
        State::Running,
        State::Draining,
        State::Stopping,
        State::Stopped,
        State::Error,
    ];

    /// Whether the machine may move from `self` to `to`.
    pub fn can_become(self, to: State) -> bool {
        use State::*;
        matches!(
            (self, to),
            (Discovered, Validating)
                | (Validating, Loading)
                | (Loading, Running)
                | (Running, Draining)
                | (Draining, Stopping)
                | (Stopping, Stopped)
                | (Validating | Loading | Running | Draining | Stopping, Error)
                | (Stopped | Error, Loading)
        )
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            State::Discovered => "discovered",
            State::Validating => "validating",
            State::Loading => "loading",
            State::Running => "running",
            State::Draining => "draining",
            State::Stopping => "stopping",
            State::Stopped => "stopped",
            State::Error => "error",
        };
        f.write_str(name)
    }
}

/// A transition the state machine does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("illegal lifecycle transition from {from} to {to}")]
pub struct IllegalTransition {
    /// The state the plugin was in.
    pub from: State,
    /// The state asked for.
    pub to: State,
}

/// A plugin's current state, safe to share between threads.
#[derive(Debug)]
pub struct Lifecycle {
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    state: State,
    error: Option<String>,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Lifecycle::new()
    }
}

impl Lifecycle {
    /// A new plugin, in [`State::Discovered`].
    pub fn new() -> Lifecycle {
        Lifecycle {
            inner: Mutex::new(Inner {
                state: State::Discovered,
                error: None,
            }),
        }
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.lock().state
    }

    /// Why the plugin is in [`State::Error`], if it is.
    pub fn error(&self) -> Option<String> {
        self.lock().error.clone()
    }

    /// Moves to `to`, returning the state left.
    ///
    /// # Errors
    /// [`IllegalTransition`] when the machine does not allow it from the current state.
    pub fn transition(&self, to: State) -> Result<State, IllegalTransition> {
        let mut inner = self.lock();
        let from = inner.state;
        if !from.can_become(to) {
            return Err(IllegalTransition { from, to });
        }
        inner.state = to;
        if to != State::Error {
            inner.error = None;
        }
        Ok(from)
    }

    /// Moves to `to` only if the current state is `from`: for callers that must not act on a
    /// state another thread has changed in between.
    ///
    /// # Errors
    /// [`IllegalTransition`] naming the actual state when it is not `from`, or when the move
    /// is not allowed.
    pub fn transition_from(&self, from: State, to: State) -> Result<(), IllegalTransition> {
        let mut inner = self.lock();
        if inner.state != from || !from.can_become(to) {
            return Err(IllegalTransition {
                from: inner.state,
                to,
            });
        }
        inner.state = to;
        Ok(())
    }

    /// Moves to [`State::Error`] with a reason.
    ///
    /// # Errors
    /// [`IllegalTransition`] from states that cannot fail (discovered, stopped, error).
    pub fn fail(&self, reason: impl Into<String>) -> Result<State, IllegalTransition> {
        let mut inner = self.lock();
        let from = inner.state;
        if !from.can_become(State::Error) {
            return Err(IllegalTransition {
                from,
                to: State::Error,
            });
        }
        inner.state = State::Error;
        inner.error = Some(reason.into());
        Ok(from)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave `Inner` half-written: every write is a
        // single assignment. So a poisoned lock is still consistent.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
