//! Serving the plugin: the `Lifecycle`, `Tool` and `Hook` services on the socket Sigil names.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde_json::Value;
use tokio::net::UnixListener;
use tokio::sync::watch;
use tokio_stream::wrappers::UnixListenerStream;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

use crate::proto::hook_server::{Hook as HookService, HookServer};
use crate::proto::host_client::HostClient;
use crate::proto::lifecycle_server::{Lifecycle, LifecycleServer};
use crate::proto::tool_server::{Tool as ToolService, ToolServer};
use crate::proto::{self, tool_error};
use crate::{
    Context, Health, KitError, PROTOCOL_VERSION, Plugin, SOCKET_ENV, Tool, ToolError, Verdict,
};

/// Serves `plugin` on the socket named by `SIGIL_PLUGIN_SOCKET` until the host asks it to shut
/// down or goes away. Starts its own async runtime.
///
/// # Errors
/// When the variable is unset, the socket cannot be bound, or serving fails.
pub fn serve(plugin: Plugin) -> Result<(), KitError> {
    let path = std::env::var_os(SOCKET_ENV).ok_or(KitError::NoSocket)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(KitError::Runtime)?;
    runtime.block_on(serve_at(plugin, Path::new(&path)))
}

/// Serves `plugin` on the Unix socket at `path`, in the caller's async runtime.
///
/// # Errors
/// When the socket cannot be bound or serving fails.
pub async fn serve_at(plugin: Plugin, path: &Path) -> Result<(), KitError> {
    let _ = std::fs::remove_file(path);
    let listener = UnixListener::bind(path).map_err(|source| KitError::Bind {
        path: path.display().to_string(),
        source,
    })?;
    // `Some(drain timeout)` once the host has asked the plugin to stop.
    let (shutdown, stopping) = watch::channel(None::<Duration>);
    let shutdown = Arc::new(shutdown);
    let host = Arc::new(RwLock::new(None));
    let tools: HashMap<String, Arc<dyn Tool>> = plugin
        .tools
        .iter()
        .map(|t| (t.descriptor().name, t.clone()))
        .collect();
    let lifecycle = LifecycleService {
        plugin: plugin.clone(),
        host: host.clone(),
        shutdown: shutdown.clone(),
    };
    let hook = HookServiceImpl {
        plugin: plugin.clone(),
        host: host.clone(),
    };
    let tool = ToolServiceImpl {
        plugin,
        tools,
        host,
    };
    let mut graceful = stopping.clone();
    let server = tonic::transport::Server::builder()
        .add_service(LifecycleServer::new(lifecycle))
        .add_service(ToolServer::new(tool))
        .add_service(HookServer::new(hook))
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), async move {
            let _ = graceful.wait_for(Option::is_some).await;
        });
    // A graceful stop also waits for the host to close its connections; the drain timeout
    // bounds that, so the process ends within it whatever the host does.
    let drained = async move {
        let mut stopping = stopping;
        let drain = stopping
            .wait_for(Option::is_some)
            .await
            .map(|drain| drain.unwrap_or_default());
        match drain {
            Ok(drain) => tokio::time::sleep(drain).await,
            // The service holding the sender is gone, so the server has already stopped.
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        served = server => served.map_err(|e| KitError::Serve(e.to_string())),
        () = drained => Ok(()),
    }
}

type HostSlot = Arc<RwLock<Option<HostClient<Channel>>>>;

struct LifecycleService {
    /// For its health check.
    plugin: Plugin,
    host: HostSlot,
    shutdown: Arc<watch::Sender<Option<Duration>>>,
}

#[tonic::async_trait]
impl Lifecycle for LifecycleService {
    async fn init(
        &self,
        request: Request<proto::InitRequest>,
    ) -> Result<Response<proto::InitResponse>, Status> {
        let request = request.into_inner();
        let major = |v: &str| v.split('.').next().map(str::to_string);
        if major(&request.protocol_version) != major(PROTOCOL_VERSION) {
            return Err(Status::failed_precondition(format!(
                "the host speaks protocol {}, this plugin speaks {PROTOCOL_VERSION}",
                request.protocol_version
            )));
        }
        if !request.host_socket.is_empty() {
            let channel = crate::context::host_channel(PathBuf::from(&request.host_socket))
                .map_err(|e| Status::internal(format!("cannot reach the host socket: {e}")))?;
            if let Ok(mut host) = self.host.write() {
                *host = Some(HostClient::new(channel));
            }
        }
        Ok(Response::new(proto::InitResponse {
            protocol_version: PROTOCOL_VERSION.to_string(),
        }))
    }

    async fn health(
        &self,
        _request: Request<proto::HealthRequest>,
    ) -> Result<Response<proto::HealthResponse>, Status> {
        let (status, message) = match self.plugin.check_health().await {
            Health::Serving => (proto::health_response::Status::Serving, String::new()),
            Health::NotServing(why) => (proto::health_response::Status::NotServing, why),
        };
        Ok(Response::new(proto::HealthResponse {
            status: status as i32,
            message,
        }))
    }

    async fn shutdown(
        &self,
        request: Request<proto::ShutdownRequest>,
    ) -> Result<Response<proto::ShutdownResponse>, Status> {
        // The server stops accepting and finishes calls in flight; the process ends when they
        // are done or the drain timeout has passed, whichever comes first.
        let drain = Duration::from_millis(request.get_ref().drain_timeout_ms.into());
        self.shutdown.send_replace(Some(drain));
        Ok(Response::new(proto::ShutdownResponse {}))
    }
}

struct ToolServiceImpl {
    plugin: Plugin,
    tools: HashMap<String, Arc<dyn Tool>>,
    host: HostSlot,
}

impl ToolServiceImpl {
    fn prepare(
        &self,
        call: Option<proto::CallInfo>,
        input: &str,
    ) -> Result<(Arc<dyn Tool>, Context, Value), Status> {
        let info = call.ok_or_else(|| Status::invalid_argument("the request names no call"))?;
        let tool = self
            .tools
            .get(&info.tool)
            .cloned()
            .ok_or_else(|| Status::not_found(format!("no tool `{}`", info.tool)))?;
        let input = parse(input, "input")?;
        let host = self.host.read().ok().and_then(|h| h.clone());
        Ok((tool, Context { info, host }, input))
    }
}

fn parse(text: &str, what: &str) -> Result<Value, Status> {
    serde_json::from_str(text)
        .map_err(|e| Status::invalid_argument(format!("the {what} is not JSON: {e}")))
}

fn wire_error(error: ToolError) -> proto::ToolError {
    let (kind, message) = match error {
        ToolError::Denied(m) => (tool_error::Kind::Denied, m),
        ToolError::InvalidInput(m) => (tool_error::Kind::InvalidInput, m),
        ToolError::Failed(m) => (tool_error::Kind::Failed, m),
    };
    proto::ToolError {
        kind: kind as i32,
        message,
    }
}

fn step(result: Result<(), ToolError>) -> Response<proto::StepResponse> {
    Response::new(proto::StepResponse {
        error: result.err().map(wire_error),
    })
}

#[tonic::async_trait]
impl ToolService for ToolServiceImpl {
    async fn describe(
        &self,
        _request: Request<proto::DescribeRequest>,
    ) -> Result<Response<proto::DescribeResponse>, Status> {
        let tools = self
            .plugin
            .tools
            .iter()
            .map(|tool| {
                let d = tool.descriptor();
                proto::ToolDescriptor {
                    name: d.name,
                    description: d.description,
                    input_schema: d.input_schema.to_string(),
                    output_schema: d.output_schema.map(|s| s.to_string()),
                    steps: Some(proto::Steps {
                        validate_pre: d.steps.validate_pre,
                        validate_post: d.steps.validate_post,
                        rollback: d.steps.rollback,
                    }),
                }
            })
            .collect();
        Ok(Response::new(proto::DescribeResponse { tools }))
    }

    async fn invoke(
        &self,
        request: Request<proto::InvokeRequest>,
    ) -> Result<Response<proto::InvokeResponse>, Status> {
        let request = request.into_inner();
        let (tool, ctx, input) = self.prepare(request.call, &request.input)?;
        let result = match tool.invoke(&ctx, input).await {
            Ok(output) => proto::invoke_response::Result::Output(output.to_string()),
            Err(error) => proto::invoke_response::Result::Error(wire_error(error)),
        };
        Ok(Response::new(proto::InvokeResponse {
            result: Some(result),
        }))
    }

    async fn validate_pre(
        &self,
        request: Request<proto::ValidatePreRequest>,
    ) -> Result<Response<proto::StepResponse>, Status> {
        let request = request.into_inner();
        let (tool, ctx, input) = self.prepare(request.call, &request.input)?;
        Ok(step(tool.validate_pre(&ctx, &input).await))
    }

    async fn validate_post(
        &self,
        request: Request<proto::ValidatePostRequest>,
    ) -> Result<Response<proto::StepResponse>, Status> {
        let request = request.into_inner();
        let (tool, ctx, input) = self.prepare(request.call, &request.input)?;
        let output = parse(&request.output, "output")?;
        Ok(step(tool.validate_post(&ctx, &input, &output).await))
    }

    async fn rollback(
        &self,
        request: Request<proto::RollbackRequest>,
    ) -> Result<Response<proto::StepResponse>, Status> {
        let request = request.into_inner();
        let (tool, ctx, input) = self.prepare(request.call, &request.input)?;
        let output = request
            .output
            .as_deref()
            .map(|o| parse(o, "output"))
            .transpose()?;
        Ok(step(tool.rollback(&ctx, &input, output.as_ref()).await))
    }
}

struct HookServiceImpl {
    plugin: Plugin,
    host: HostSlot,
}

#[tonic::async_trait]
impl HookService for HookServiceImpl {
    async fn on_event(
        &self,
        request: Request<proto::HookEvent>,
    ) -> Result<Response<proto::HookVerdict>, Status> {
        let Some(hook) = self.plugin.hook.clone() else {
            return Err(Status::unimplemented("this plugin handles no hook events"));
        };
        let request = request.into_inner();
        let info = request
            .call
            .ok_or_else(|| Status::invalid_argument("the event names no call"))?;
        let payload = parse(&request.payload, "payload")?;
        let host = self.host.read().ok().and_then(|h| h.clone());
        let verdict = match hook(Context { info, host }, request.event, payload).await {
            Verdict::Allow => proto::hook_verdict::Verdict::Allow(proto::HookAllow {}),
            Verdict::Deny(reason) => proto::hook_verdict::Verdict::Deny(reason),
            Verdict::Patch(payload) => proto::hook_verdict::Verdict::Patch(payload.to_string()),
            Verdict::AskApproval(reason) => proto::hook_verdict::Verdict::AskApproval(reason),
        };
        Ok(Response::new(proto::HookVerdict {
            verdict: Some(verdict),
        }))
    }
}
