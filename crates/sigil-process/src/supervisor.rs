//! Supervision: keeps one plugin's process running, restarts it with backoff when it ends, and
//! quarantines it when it keeps crashing.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use crate::instance::{Instance, Starter};
use crate::spawn::StartError;

/// When a crashing plugin is restarted, and when it is given up on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartPolicy {
    /// This many ends within [`RestartPolicy::window`] quarantine the plugin.
    pub max_crashes: usize,
    /// The window crashes are counted in.
    pub window: Duration,
    /// The wait before the first restart; it doubles with each crash in the window.
    pub backoff: Duration,
    /// The longest wait before a restart.
    pub max_backoff: Duration,
}

impl RestartPolicy {
    /// Five crashes within a minute quarantine a plugin; restarts wait 50 ms, doubling up to
    /// 5 s.
    pub const DEFAULT: RestartPolicy = RestartPolicy {
        max_crashes: 5,
        window: Duration::from_secs(60),
        backoff: Duration::from_millis(50),
        max_backoff: Duration::from_secs(5),
    };

    fn delay(&self, crashes: usize) -> Duration {
        let doublings = u32::try_from(crashes.saturating_sub(1))
            .unwrap_or(u32::MAX)
            .min(16);
        self.backoff
            .saturating_mul(1u32 << doublings)
            .min(self.max_backoff)
    }
}

/// Where a supervised plugin is.
#[derive(Debug, Clone)]
pub(crate) enum Slot {
    /// Its process is starting.
    Starting,
    /// Serving calls.
    Ready(Arc<Instance>),
    /// Its process ended; it will be restarted after a backoff.
    Restarting(String),
    /// It crashed too often and is not restarted.
    Quarantined(String),
    /// It may not start again as loaded (a granted directory moved, its signed files
    /// changed); refused, on the record, until it is reloaded.
    Refused(String),
    /// Stopped by the host.
    Stopped,
}

/// Supervises one plugin.
#[derive(Debug)]
pub(crate) struct Supervisor {
    slot: watch::Receiver<Slot>,
    stop: Arc<Notify>,
}

impl Supervisor {
    /// Starts supervising on the current runtime; the first start begins at once.
    pub(crate) fn start(starter: Starter, policy: RestartPolicy, drain: Duration) -> Supervisor {
        let (slot_tx, slot) = watch::channel(Slot::Starting);
        let stop = Arc::new(Notify::new());
        tokio::spawn(supervise(starter, policy, drain, slot_tx, stop.clone()));
        Supervisor { slot, stop }
    }

    /// The current state.
    pub(crate) fn slot(&self) -> Slot {
        self.slot.borrow().clone()
    }

    /// The running instance, waiting for a (re)start until `deadline`.
    ///
    /// # Errors
    /// When the plugin is quarantined or stopped, or is not serving by the deadline.
    pub(crate) async fn instance(&self, deadline: Instant) -> Result<Arc<Instance>, String> {
        let mut slot = self.slot.clone();
        loop {
            let last = match &*slot.borrow_and_update() {
                Slot::Ready(instance) if !instance.retired() => return Ok(instance.clone()),
                Slot::Ready(instance) => instance.ended().unwrap_or_default(),
                Slot::Quarantined(reason) | Slot::Refused(reason) => return Err(reason.clone()),
                Slot::Stopped => return Err("the plugin has been stopped".into()),
                Slot::Starting => String::new(),
                Slot::Restarting(reason) => reason.clone(),
            };
            match tokio::time::timeout_at(deadline, slot.changed()).await {
                Ok(Ok(())) => continue,
                Ok(Err(_)) => return Err("the plugin's supervisor has ended".into()),
                Err(_) => {
                    let last = if last.is_empty() {
                        String::new()
                    } else {
                        format!(" (its process {last})")
                    };
                    return Err(format!(
                        "the plugin was not serving before the call's deadline{last}"
                    ));
                }
            }
        }
    }

    /// Waits until the first start has succeeded or the plugin is quarantined.
    pub(crate) async fn first_ready(&self) -> Result<Arc<Instance>, String> {
        let mut slot = self.slot.clone();
        loop {
            match &*slot.borrow_and_update() {
                Slot::Ready(instance) => return Ok(instance.clone()),
                Slot::Quarantined(reason) | Slot::Refused(reason) => return Err(reason.clone()),
                Slot::Stopped => return Err("the plugin was stopped while starting".into()),
                Slot::Starting | Slot::Restarting(_) => {}
            }
            if slot.changed().await.is_err() {
                return Err("the plugin's supervisor ended while starting".into());
            }
        }
    }

    /// Stops the plugin: it is asked to drain, then ended.
    pub(crate) fn stop(&self) {
        self.stop.notify_one();
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn supervise(
    starter: Starter,
    policy: RestartPolicy,
    drain: Duration,
    slot: watch::Sender<Slot>,
    stop: Arc<Notify>,
) {
    let plugin = starter.launch.plugin.clone();
    let mut crashes: VecDeque<Instant> = VecDeque::new();
    loop {
        slot.send_replace(Slot::Starting);
        let started = tokio::select! {
            started = Instance::start(&starter) => started,
            () = stop.notified() => break,
        };
        let reason = match started {
            Ok(instance) => {
                let instance = Arc::new(instance);
                slot.send_replace(Slot::Ready(instance.clone()));
                tracing::info!(plugin = %plugin, "plugin process serving");
                tokio::select! {
                    ended = instance.wait_ended() => ended,
                    () = stop.notified() => {
                        instance.shutdown(drain).await;
                        break;
                    }
                }
            }
            Err(StartError::Refused(reason)) => {
                let reason = format!("refused to start: {reason}");
                tracing::error!(plugin = %plugin, %reason, "plugin refused");
                slot.send_replace(Slot::Refused(reason));
                stop.notified().await;
                break;
            }
            Err(StartError::Failed(error)) => error,
        };
        let now = Instant::now();
        crashes.push_back(now);
        while crashes
            .front()
            .is_some_and(|t| now.duration_since(*t) > policy.window)
        {
            crashes.pop_front();
        }
        if crashes.len() >= policy.max_crashes {
            let reason = format!(
                "quarantined: its process ended {} times within {} s (last: {reason}); reload it to try again",
                crashes.len(),
                policy.window.as_secs()
            );
            tracing::error!(plugin = %plugin, %reason, "plugin quarantined");
            slot.send_replace(Slot::Quarantined(reason));
            stop.notified().await;
            break;
        }
        let delay = policy.delay(crashes.len());
        tracing::warn!(plugin = %plugin, %reason, delay_ms = delay.as_millis() as u64, "plugin process ended; restarting");
        slot.send_replace(Slot::Restarting(reason));
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = stop.notified() => break,
        }
    }
    slot.send_replace(Slot::Stopped);
}
