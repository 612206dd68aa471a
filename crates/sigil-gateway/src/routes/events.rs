//! `GET /v1/events`: server-sent events of plugin state changes and audit decisions.
//!
//! The stream opens with an `ready` event once the subscription is live, so a client knows
//! that everything after it will be seen. A user holding `admin.audit` sees every decision;
//! others see their own decisions and every plugin state change. Approval requests and
//! decisions go to users holding `approvals.decide` (or `admin.audit`) and to the user whose
//! call is held. A client that falls behind
//! gets a `lagged` event saying how many events it missed. The stream ends when the daemon
//! shuts down.

use std::convert::Infallible;

use axum::Extension;
use axum::extract::State;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_util::Stream;
use sigil_audit::Actor;
use sigil_runtime::Event;
use tokio::sync::{broadcast, watch};

use crate::error::ErrorBody;
use crate::state::{ADMIN_AUDIT, APPROVALS_DECIDE, AppState};

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
        (status = 200, description = "An event stream (text/event-stream) that lasts until the daemon stops.", body = String, content_type = "text/event-stream"),
        (status = 400, description = "Bad X-Sigil-Workspace.", body = ErrorBody),
        (status = 401, description = "Missing or invalid token.", body = ErrorBody),
    )
)]
pub(crate) async fn events(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let everything = state.holds(&actor, ADMIN_AUDIT).await;
    let decides = everything || state.holds(&actor, APPROVALS_DECIDE).await;
    let watcher = Watcher {
        events: state.runtime().subscribe(),
        shutdown: state.inner.shutdown.clone(),
        user: actor.user.clone(),
        everything,
        decides,
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
    user: Option<String>,
    everything: bool,
    /// Sees every approval request and decision, not only those of the user's own calls.
    decides: bool,
    greeted: bool,
}

impl Watcher {
    async fn next(&mut self) -> Option<SseEvent> {
        if !self.greeted {
            self.greeted = true;
            let scope = if self.everything { "all" } else { "own" };
            let data = serde_json::json!({ "user": self.user, "decisions": scope });
            return Some(SseEvent::default().event("ready").data(data.to_string()));
        }
        loop {
            if *self.shutdown.borrow() {
                return None;
            }
            let received = tokio::select! {
                received = self.events.recv() => received,
                _ = self.shutdown.changed() => return None,
            };
            match received {
                Ok(event) => {
                    if let Some(sse) = self.render(&event) {
                        return Some(sse);
                    }
                }
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    let data = serde_json::json!({ "missed": missed });
                    return Some(SseEvent::default().event("lagged").data(data.to_string()));
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }

    fn render(&self, event: &Event) -> Option<SseEvent> {
        let (actor, everything) = match event {
            Event::Decision { actor, .. } => (actor, self.everything),
            Event::ApprovalRequested { approval } => (&approval.actor, self.decides),
            Event::ApprovalDecided { actor, .. } => (actor, self.decides),
            Event::PluginState { .. }
            | Event::PluginRemoved { .. }
            | Event::ReloadFailed { .. }
            | Event::ConfigChanged { .. }
            | Event::ConfigRejected { .. } => {
                return self.publish(event);
            }
        };
        if !everything && actor.user != self.user {
            return None;
        }
        self.publish(event)
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
