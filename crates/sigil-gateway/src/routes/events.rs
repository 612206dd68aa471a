//! `GET /v1/events`: server-sent events of plugin state changes and audit decisions.
//!
//! The stream opens with an `ready` event once the subscription is live, so a client knows
//! that everything after it will be seen. A user holding `admin.audit` sees every decision;
//! others see their own decisions and every plugin state change. Approval requests and
//! decisions go to the user whose call is held, to users holding `admin.audit`, and to users
//! holding `approvals.decide` in the workspace of the call. A client that falls behind gets a
//! `lagged` event saying how many events it missed.
//!
//! # Security
//! A stream lasts only as long as what let it open. Before each event is delivered, and every
//! [`RECHECK_INTERVAL`] while none is, its token is looked up again and the enforcer asked
//! again (without recording): the user must still be in `sigil.toml` and belong to the
//! stream's workspace, and still hold `admin.audit` or `approvals.decide` if it held them when
//! the stream opened. When the token has been revoked or any of these is gone, the stream ends
//! without delivering the event, and the refusal is recorded in the audit log. It also ends
//! when the daemon shuts down.

use std::convert::Infallible;
use std::time::Duration;

use axum::Extension;
use axum::extract::State;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_util::Stream;
use sigil_audit::{Actor, AuditSink, NewRecord, Verdict};
use sigil_runtime::Event;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::sync::watch;
use tokio::time::{Interval, MissedTickBehavior};

use crate::auth::TokenId;
use crate::error::ErrorBody;
use crate::state::{ADMIN_AUDIT, APPROVALS_DECIDE, AppState};

/// How often a stream with nothing to deliver checks again that its token and its user's
/// permissions still hold. A stream about to deliver an event checks first, whatever the time.
pub const RECHECK_INTERVAL: Duration = Duration::from_secs(1);

/// Plugin state changes, audit decisions and approvals as server-sent events: `ready` first,
/// then `plugin_state`, `plugin_removed`, `reload_failed`, `decision`, `approval_requested` and
/// `approval_decided` events whose data is JSON (see the gateway documentation), and `lagged`
/// when events were dropped for a slow client.
#[utoipa::path(
    get,
    path = "/v1/events",
    tag = "events",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "An event stream (text/event-stream) that lasts until the daemon stops, the token is revoked, or the user loses the workspace or permissions it was opened with.", body = String, content_type = "text/event-stream"),
        (status = 400, description = "Bad X-Sigil-Workspace.", body = ErrorBody),
        (status = 401, description = "Missing or invalid token.", body = ErrorBody),
        (status = 403, description = "The user does not belong to the workspace.", body = ErrorBody),
    )
)]
pub(crate) async fn events(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    Extension(token): Extension<TokenId>,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let everything = state.holds(&actor, ADMIN_AUDIT).await;
    // Approvals a user may decide are shown per event, by the workspace of their call; holding
    // the permission here is one more thing the stream depends on.
    let decides = !everything && state.holds(&actor, APPROVALS_DECIDE).await;
    let mut held = Vec::new();
    if everything {
        held.push(ADMIN_AUDIT);
    }
    if decides {
        held.push(APPROVALS_DECIDE);
    }
    let mut recheck = tokio::time::interval(RECHECK_INTERVAL);
    recheck.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let watcher = Watcher {
        events: state.runtime().subscribe(),
        shutdown: state.inner.shutdown.clone(),
        state,
        actor,
        token,
        held,
        everything,
        recheck,
        greeted: false,
    };
    let stream = futures_util::stream::unfold(watcher, |mut watcher| async move {
        watcher.next().await.map(|event| (Ok(event), watcher))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

struct Watcher {
    events: broadcast::Receiver<Event>,
    shutdown: watch::Receiver<bool>,
    state: AppState,
    /// Whom the stream is for, and in which workspace.
    actor: Actor,
    /// The token that opened it.
    token: TokenId,
    /// The permissions the stream was opened with, which it keeps depending on.
    held: Vec<&'static str>,
    /// Sees every decision and approval.
    everything: bool,
    recheck: Interval,
    greeted: bool,
}

/// What wakes a waiting stream.
#[allow(clippy::large_enum_variant)] // one short-lived value per wake, never stored
enum Wake {
    Event(Result<Event, RecvError>),
    Recheck,
    Shutdown,
}

/// Why a stream may no longer deliver.
enum Gone {
    /// Its token was revoked (or deleted).
    Token,
    /// The token could not be looked up again.
    TokenStore,
    /// Its user left `sigil.toml` or the workspace.
    Actor,
    /// Its user no longer holds a permission the stream was opened with.
    Permission(&'static str),
}

impl Watcher {
    async fn next(&mut self) -> Option<SseEvent> {
        if !self.greeted {
            self.greeted = true;
            let scope = if self.everything { "all" } else { "own" };
            let data = serde_json::json!({ "user": self.actor.user, "decisions": scope });
            return Some(SseEvent::default().event("ready").data(data.to_string()));
        }
        loop {
            if *self.shutdown.borrow() {
                return None;
            }
            let wake = tokio::select! {
                received = self.events.recv() => Wake::Event(received),
                _ = self.shutdown.changed() => Wake::Shutdown,
                _ = self.recheck.tick() => Wake::Recheck,
            };
            let due = matches!(wake, Wake::Recheck);
            let sse = match wake {
                Wake::Shutdown => return None,
                Wake::Recheck => None,
                Wake::Event(Ok(event)) => self.render(&event),
                Wake::Event(Err(RecvError::Lagged(missed))) => {
                    let data = serde_json::json!({ "missed": missed });
                    Some(SseEvent::default().event("lagged").data(data.to_string()))
                }
                Wake::Event(Err(RecvError::Closed)) => return None,
            };
            // Checked before anything goes out, not only on the timer: once a token is revoked
            // or a permission removed, no later event reaches the stream.
            if (due || sse.is_some())
                && let Some(gone) = self.gone()
                && self.close(gone).await
            {
                return None;
            }
            if let Some(sse) = sse {
                return Some(sse);
            }
        }
    }

    /// What no longer holds of what let the stream open, asked without recording.
    fn gone(&self) -> Option<Gone> {
        match self.state.inner.tokens.is_active(&self.token.0) {
            Ok(true) => {}
            Ok(false) => return Some(Gone::Token),
            Err(error) => {
                tracing::error!(%error, "cannot check an event stream's token again; closing it");
                return Some(Gone::TokenStore);
            }
        }
        if self
            .state
            .runtime()
            .enforcer()
            .membership(&self.actor)
            .is_err()
        {
            return Some(Gone::Actor);
        }
        self.held
            .iter()
            .copied()
            .find(|capability| !self.state.would_hold(&self.actor, capability))
            .map(Gone::Permission)
    }

    /// Records why the stream ends. Returns whether it ends: a permission found gone is
    /// decided again, recorded, and the stream goes on if it was given back meanwhile.
    async fn close(&self, gone: Gone) -> bool {
        let rule = match gone {
            Gone::Permission(capability) => {
                if self.state.holds(&self.actor, capability).await {
                    return false;
                }
                tracing::info!(user = ?self.actor.user, capability, "event stream closed: permission removed");
                return true;
            }
            Gone::Actor => {
                let Err(rule) = self
                    .state
                    .runtime()
                    .enforcer()
                    .check_membership(&self.actor)
                    .await
                else {
                    return false;
                };
                tracing::info!(user = ?self.actor.user, %rule, "event stream closed");
                return true;
            }
            Gone::Token => format!("event stream closed: token `{}` was revoked", self.token.0),
            Gone::TokenStore => format!(
                "event stream closed: token `{}` could not be checked again",
                self.token.0
            ),
        };
        tracing::info!(user = ?self.actor.user, %rule, "event stream closed");
        let record = NewRecord::decision(Verdict::Deny, rule).with_actor(self.actor.clone());
        if let Err(error) = self.state.runtime().audit().submit(record).await {
            tracing::error!(%error, "the closing of an event stream could not be recorded");
        }
        true
    }

    fn render(&self, event: &Event) -> Option<SseEvent> {
        let (actor, visible) = match event {
            Event::Decision { actor, .. } => (actor, self.everything),
            Event::ApprovalRequested { approval } => (
                &approval.actor,
                self.everything || self.decides_in(approval.actor.workspace.as_deref()),
            ),
            Event::ApprovalDecided { actor, .. } => (
                actor,
                self.everything || self.decides_in(actor.workspace.as_deref()),
            ),
            Event::PluginState { .. }
            | Event::PluginRemoved { .. }
            | Event::ReloadFailed { .. }
            | Event::ConfigChanged { .. }
            | Event::ConfigRejected { .. } => {
                return self.publish(event);
            }
        };
        if !visible && actor.user != self.actor.user {
            return None;
        }
        self.publish(event)
    }

    /// Whether the stream's user may decide approvals of calls made in `workspace`.
    fn decides_in(&self, workspace: Option<&str>) -> bool {
        self.state.may_decide_in(&self.actor, workspace)
    }

    fn publish(&self, event: &Event) -> Option<SseEvent> {
        let data = serde_json::to_string(event).ok()?;
        let mut sse = SseEvent::default().event(event.name()).data(data);
        if let Event::Decision { seq, .. } = event {
            sse = sse.id(seq.to_string());
        }
        Some(sse)
    }
}
