//! One process plugin as the runtime sees it: a [`ToolPlugin`] forwarding each step over gRPC
//! to the supervised process.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use sigil_runtime::{
    Call, GrantedDir, HookEvent, HookVerdict, Steps, ToolDescriptor, ToolError, ToolPlugin,
    async_trait,
};
use tokio::time::Instant;
use tonic::{Code, Response, Status};

use crate::host::Calls;
use crate::instance::Instance;
use crate::proto::{self, hook_verdict, tool_error};
use crate::supervisor::{Slot, Supervisor};

/// A loaded process plugin.
#[derive(Debug)]
pub(crate) struct ProcessPlugin {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) id: String,
    pub(crate) tools: Vec<ToolDescriptor>,
    pub(crate) supervisor: Supervisor,
    pub(crate) calls: Arc<Calls>,
    pub(crate) binds: Vec<GrantedDir>,
    pub(crate) deadline: Duration,
    pub(crate) output_cap: usize,
    /// Set when the runtime stops this generation (replaced, drain timeout passed).
    pub(crate) stopped: std::sync::atomic::AtomicBool,
}

impl Drop for ProcessPlugin {
    fn drop(&mut self) {
        self.inner.supervisor.stop();
    }
}

/// How long a step may take, and the setting that says so (named in errors).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limit {
    time: Duration,
    setting: &'static str,
    /// How much longer the tier waits than the runtime does: a hook's timeout is the runtime's
    /// to report, so the tier's own timer only backs it up.
    grace: Duration,
}

impl ProcessPlugin {
    /// The limit of a tool's pipeline steps.
    fn tool_limit(&self) -> Limit {
        Limit {
            time: self.inner.deadline,
            setting: "execution.limits.timeout_ms",
            grace: Duration::ZERO,
        }
    }

    /// Runs one step on the caller's task. A caller that stops waiting at the deadline drops
    /// the step, and [`Abandon`] ends the process it was using; one that stops waiting earlier
    /// cancels the request and leaves the process serving.
    async fn step<T, F, Fut>(&self, call: &Call, limit: Limit, rpc: F) -> Result<T, ToolError>
    where
        T: Send + 'static,
        F: FnOnce(Arc<Instance>, proto::CallInfo, Duration) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Response<T>, Status>> + Send,
    {
        let mut abandon = Abandon {
            using: Arc::default(),
            started: Instant::now(),
            deadline: limit.time,
            finished: false,
        };
        let result = self.inner.step(call, limit, rpc, &abandon.using).await;
        abandon.finished = true;
        result
    }
}

/// Ends the process a step was using when the runtime stops waiting for the step at its
/// deadline (dropping it), before the runtime reports the deadline: the next call must not be
/// routed to a process still busy with the abandoned step. (A step the runtime waits out ends
/// the process itself, at its own deadline.) A step abandoned early for another reason (its
/// caller went away) leaves the process alone.
struct Abandon {
    using: Arc<std::sync::Mutex<Option<Arc<Instance>>>>,
    started: Instant,
    deadline: Duration,
    finished: bool,
}

impl Drop for Abandon {
    fn drop(&mut self) {
        if self.finished || self.started.elapsed() + ABANDON_SLACK < self.deadline {
            return;
        }
        if let Some(instance) = self.using.lock().ok().and_then(|mut u| u.take()) {
            instance.kill(format!(
                "was stopped: it did not answer within the deadline of {} ms",
                self.deadline.as_millis()
            ));
        }
    }
}

/// How early before the deadline an abandoned step still counts as having reached it.
const ABANDON_SLACK: Duration = Duration::from_millis(100);

impl Inner {
    async fn step<T, F, Fut>(
        &self,
        call: &Call,
        limit: Limit,
        rpc: F,
        using: &std::sync::Mutex<Option<Arc<Instance>>>,
    ) -> Result<T, ToolError>
    where
        F: FnOnce(Arc<Instance>, proto::CallInfo, Duration) -> Fut,
        Fut: Future<Output = Result<Response<T>, Status>>,
    {
        let deadline = Instant::now() + limit.time + limit.grace;
        self.check_binds(call).await?;
        let instance = self
            .supervisor
            .instance(deadline)
            .await
            .map_err(ToolError::Failed)?;
        if let Ok(mut using) = using.lock() {
            *using = Some(instance.clone());
        }
        let _registered = self.calls.register(call);
        let info = proto::CallInfo {
            call_id: call.call_id().to_string(),
            tool: call.tool().to_string(),
            user: call.actor().user.clone(),
            workspace: call.actor().workspace.clone(),
        };
        // The plugin learns the deadline (`grpc-timeout`) and can bound its own host calls by it.
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout_at(deadline, rpc(instance.clone(), info, left)).await {
            Ok(Ok(reply)) => Ok(reply.into_inner()),
            Ok(Err(status)) => Err(self.failure(&instance, status).await),
            Err(_) => {
                let ms = limit.time.as_millis();
                let setting = limit.setting;
                instance.kill(format!(
                    "was stopped: it did not answer within the deadline of {ms} ms"
                ));
                Err(ToolError::Failed(format!(
                    "deadline of {ms} ms exceeded ({setting}); the plugin process was stopped and is being restarted"
                )))
            }
        }
    }

    /// The sandbox's binds are the directories held since load; each grant must still lead to
    /// its directory, each must be allowed for this call's actor (an audited decision), and no
    /// deny may carve into one, or the call does not reach the plugin.
    async fn check_binds(&self, call: &Call) -> Result<(), ToolError> {
        check_binds(&self.binds, call).await
    }

    /// Explains a failed step: an oversized reply, the process ending mid-call, or a bad reply.
    async fn failure(&self, instance: &Instance, status: Status) -> ToolError {
        if status.code() == Code::OutOfRange && status.message().contains("too large") {
            return ToolError::Failed(format!(
                "the plugin's reply exceeds the limit of {} bytes (execution.limits.output_bytes)",
                self.output_cap
            ));
        }
        if let Some(ended) = instance.ended_within(Duration::from_secs(2)).await {
            if self.stopped.load(std::sync::atomic::Ordering::SeqCst) {
                return ToolError::Failed(format!(
                    "the plugin was replaced and its drain timeout passed before this call finished (lifecycle.drain_timeout_ms); its process {ended}"
                ));
            }
            return ToolError::Failed(format!(
                "the plugin process {ended} during the call; it is being restarted"
            ));
        }
        if matches!(
            status.code(),
            Code::Unavailable | Code::Unknown | Code::Internal
        ) {
            instance.kill(format!(
                "was stopped: its connection failed ({})",
                status.message()
            ));
            return ToolError::Failed(format!(
                "the plugin's connection failed during the call ({}); it is being restarted",
                status.message()
            ));
        }
        ToolError::Failed(format!(
            "the plugin refused the call: {}: {}",
            status.code(),
            status.message().chars().take(1000).collect::<String>()
        ))
    }

    /// Why the plugin is quarantined or refused, if it is.
    pub(crate) fn quarantine(&self) -> Option<String> {
        match self.supervisor.slot() {
            Slot::Quarantined(reason) | Slot::Refused(reason) => Some(reason),
            _ => None,
        }
    }
}

/// Checks each of a sandbox's binds for `call` ([`GrantedDir::authorize`]): its grant still
/// leads to the directory held (a change is refused on the record), the call's actor may have
/// it (an audited decision), and no deny carves into it.
pub(crate) async fn check_binds(binds: &[GrantedDir], call: &Call) -> Result<(), ToolError> {
    for bind in binds {
        bind.authorize(call).await?;
    }
    Ok(())
}

pub(crate) fn tool_error(error: Option<proto::ToolError>) -> Result<(), ToolError> {
    error.map_or(Ok(()), |e| Err(lift(e)))
}

fn lift(error: proto::ToolError) -> ToolError {
    let message = sigil_runtime::guest_text::clean(&error.message);
    match tool_error::Kind::try_from(error.kind).unwrap_or(tool_error::Kind::Failed) {
        // The plugin's claim that something was denied is its own message; actual denials
        // are recorded by the enforcer.
        tool_error::Kind::Denied => ToolError::Failed(format!("denied: {message}")),
        tool_error::Kind::InvalidInput => ToolError::InvalidInput(message),
        tool_error::Kind::Failed | tool_error::Kind::Unspecified => ToolError::Failed(message),
    }
}

/// Lifts a hook's wire verdict. A patch must be JSON; reasons are capped like error messages.
pub(crate) fn verdict(reply: proto::HookVerdict) -> Result<HookVerdict, ToolError> {
    let reason = |text: String| sigil_runtime::guest_text::clean(&text);
    match reply.verdict {
        Some(hook_verdict::Verdict::Allow(_)) => Ok(HookVerdict::Allow),
        Some(hook_verdict::Verdict::Deny(why)) => Ok(HookVerdict::Deny(reason(why))),
        Some(hook_verdict::Verdict::AskApproval(why)) => Ok(HookVerdict::Ask(reason(why))),
        Some(hook_verdict::Verdict::Patch(text)) => serde_json::from_str(&text)
            .map(HookVerdict::Patch)
            .map_err(|e| ToolError::Failed(format!("the hook's patch is not JSON: {e}"))),
        None => Err(ToolError::Failed(
            "the hook's reply holds no verdict".into(),
        )),
    }
}

/// Lifts a tool's wire result: its output as JSON, or its error.
pub(crate) fn invoke_result(reply: proto::InvokeResponse) -> Result<Value, ToolError> {
    match reply.result {
        Some(proto::invoke_response::Result::Output(output)) => parse_output(&output),
        Some(proto::invoke_response::Result::Error(error)) => Err(lift(error)),
        None => Err(ToolError::Failed(
            "the plugin's reply holds no result".into(),
        )),
    }
}

fn parse_output(text: &str) -> Result<Value, ToolError> {
    serde_json::from_str(text)
        .map_err(|e| ToolError::Failed(format!("the plugin returned invalid JSON: {e}")))
}

/// Lifts a wire descriptor into the runtime's, rejecting schemas that are not JSON.
pub(crate) fn descriptor(raw: proto::ToolDescriptor) -> Result<ToolDescriptor, String> {
    let schema = |text: &str, what: &str| -> Result<Value, String> {
        serde_json::from_str(text)
            .map_err(|e| format!("tool `{}`: {what} is not JSON: {e}", raw.name))
    };
    let steps = raw.steps.unwrap_or_default();
    Ok(ToolDescriptor {
        name: raw.name.clone(),
        description: raw.description.clone(),
        input_schema: schema(&raw.input_schema, "input schema")?,
        output_schema: raw
            .output_schema
            .as_deref()
            .map(|s| schema(s, "output schema"))
            .transpose()?,
        steps: Steps {
            validate_pre: steps.validate_pre,
            validate_post: steps.validate_post,
            rollback: steps.rollback,
        },
    })
}

#[async_trait]
impl ToolPlugin for ProcessPlugin {
    fn tools(&self) -> Vec<ToolDescriptor> {
        self.inner.tools.clone()
    }

    fn unavailable(&self) -> Option<String> {
        self.inner.quarantine()
    }

    fn stop(&self) {
        self.inner
            .stopped
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.inner.supervisor.stop();
    }

    fn handles_hooks(&self) -> bool {
        true
    }

    async fn on_event(
        &self,
        call: &Call,
        event: HookEvent,
        payload: &Value,
        timeout: Duration,
    ) -> Result<HookVerdict, ToolError> {
        let payload = payload.to_string();
        let limit = Limit {
            time: timeout,
            setting: "hooks[].timeout_ms",
            grace: ABANDON_SLACK,
        };
        let reply = self
            .step(call, limit, move |instance, info, left| async move {
                instance
                    .hook
                    .clone()
                    .on_event(timed(
                        proto::HookEvent {
                            event: event.as_str().to_string(),
                            payload,
                            call: Some(info),
                        },
                        left,
                    ))
                    .await
            })
            .await?;
        verdict(reply)
    }

    async fn invoke(&self, call: &Call, input: Value) -> Result<Value, ToolError> {
        let input = input.to_string();
        let reply = self
            .step(
                call,
                self.tool_limit(),
                move |instance, info, left| async move {
                    instance
                        .tool
                        .clone()
                        .invoke(timed(
                            proto::InvokeRequest {
                                call: Some(info),
                                input,
                            },
                            left,
                        ))
                        .await
                },
            )
            .await?;
        invoke_result(reply)
    }

    async fn validate_pre(&self, call: &Call, input: &Value) -> Result<(), ToolError> {
        let input = input.to_string();
        let reply = self
            .step(
                call,
                self.tool_limit(),
                move |instance, info, left| async move {
                    instance
                        .tool
                        .clone()
                        .validate_pre(timed(
                            proto::ValidatePreRequest {
                                call: Some(info),
                                input,
                            },
                            left,
                        ))
                        .await
                },
            )
            .await?;
        tool_error(reply.error)
    }

    async fn validate_post(
        &self,
        call: &Call,
        input: &Value,
        output: &Value,
    ) -> Result<(), ToolError> {
        let input = input.to_string();
        let output = output.to_string();
        let reply = self
            .step(
                call,
                self.tool_limit(),
                move |instance, info, left| async move {
                    instance
                        .tool
                        .clone()
                        .validate_post(timed(
                            proto::ValidatePostRequest {
                                call: Some(info),
                                input,
                                output,
                            },
                            left,
                        ))
                        .await
                },
            )
            .await?;
        tool_error(reply.error)
    }

    async fn rollback(
        &self,
        call: &Call,
        input: &Value,
        output: Option<&Value>,
    ) -> Result<(), ToolError> {
        let input = input.to_string();
        let output = output.map(Value::to_string);
        let reply = self
            .step(
                call,
                self.tool_limit(),
                move |instance, info, left| async move {
                    instance
                        .tool
                        .clone()
                        .rollback(timed(
                            proto::RollbackRequest {
                                call: Some(info),
                                input,
                                output,
                            },
                            left,
                        ))
                        .await
                },
            )
            .await?;
        tool_error(reply.error)
    }
}

/// `message` with `left` as its gRPC deadline.
fn timed<T>(message: T, left: Duration) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(left);
    request
}
