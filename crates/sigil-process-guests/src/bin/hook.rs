//! A hook plugin whose verdicts are chosen by the tool input it sees, so one binary serves
//! every hook test. `HOOK_NAME` (from the manifest's environment) names this instance; the
//! input addresses it by that name:
//!
//! - `"deny": NAME` denies; `"ask": NAME` asks for approval;
//! - `"crash": NAME` ends the process mid-event; `"sleep": NAME` sleeps for `sleep_ms`;
//! - `"break": NAME` patches `fail` to a value outside the `stage` tool's schema;
//! - a `trail` array gets NAME appended (a patch), which shows the order hooks ran in;
//! - anything else is allowed.
//!
//! After-events are observed the same way: `"crash_after"` and `"sleep_after"` name the hook to
//! crash or sleep, and each observed output is stored in kv under `seen` (a host call made
//! under the hook's own call).

use std::time::Duration;

use serde_json::{Value, json};
use sigil_process_kit::{Context, Plugin, Verdict};

fn named(input: &Value, field: &str, name: &str) -> bool {
    input[field].as_str() == Some(name)
}

async fn before(name: &str, mut payload: Value) -> Verdict {
    let input = payload["input"].clone();
    if named(&input, "crash", name) {
        std::process::exit(3);
    }
    if named(&input, "sleep", name) {
        let ms = input["sleep_ms"].as_u64().unwrap_or(10_000);
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    if named(&input, "deny", name) {
        return Verdict::Deny(format!("{name} refuses {}", payload["tool"]));
    }
    if named(&input, "ask", name) {
        return Verdict::AskApproval(format!("{name} wants a human to look"));
    }
    if named(&input, "break", name) {
        payload["input"]["fail"] = json!("bogus");
        return Verdict::Patch(payload);
    }
    if let Some(trail) = payload["input"]["trail"].as_array_mut() {
        trail.push(json!(name));
        return Verdict::Patch(payload);
    }
    Verdict::Allow
}

async fn after(ctx: Context, name: &str, payload: Value) -> Verdict {
    let input = &payload["input"];
    if named(input, "crash_after", name) {
        std::process::exit(4);
    }
    if named(input, "sleep_after", name) {
        tokio::time::sleep(Duration::from_millis(10_000)).await;
    }
    let seen = json!({ "output": payload["output"], "error": payload["error"] }).to_string();
    if let Err(error) = ctx.kv_set("seen", seen.as_bytes()).await {
        ctx.log_info(&format!("cannot remember the output: {error}"))
            .await;
    }
    // Ignored by the host: after-hooks only observe.
    Verdict::Deny("after-hooks cannot deny".into())
}

fn main() -> Result<(), sigil_process_kit::KitError> {
    let name = std::env::var("HOOK_NAME").unwrap_or_else(|_| "hook".into());
    let plugin = Plugin::new().hook(move |ctx, event, payload| {
        let name = name.clone();
        async move {
            match event.as_str() {
                "before_tool_execute" => before(&name, payload).await,
                "after_tool_execute" => after(ctx, &name, payload).await,
                _ => Verdict::Allow,
            }
        }
    });
    sigil_process_kit::serve(plugin)
}
