//! What a process plugin sends the host, as bytes off the wire: the first byte picks the
//! message (`InvokeResponse`, `StepResponse`, `HookVerdict`, `InitResponse`,
//! `DescribeResponse`, `HttpSendRequest`), the rest is decoded by prost and then handled by the
//! host's own code, as at load and during a call. Nothing panics; plugin text reaching the
//! runtime is capped; tools the runtime accepts have valid, unique names; and an HTTP request
//! is decided on the one canonical spelling of the address it connects to.
#![no_main]

use prost::Message;
use sigil_policy::Capability;
use sigil_process::fuzzing;
use sigil_process::proto;
use sigil_runtime::{HookVerdict, ToolError};

/// The most characters of plugin text (an error message, a reason) the host passes on.
const MAX_TEXT_CHARS: usize = 4096;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&which, bytes)) = data.split_first() else {
        return;
    };
    match which % 6 {
        0 => {
            if let Ok(reply) = proto::InvokeResponse::decode(bytes)
                && let Err(error) = fuzzing::invoke_result(reply)
            {
                capped(&error);
            }
        }
        1 => {
            if let Ok(reply) = proto::StepResponse::decode(bytes)
                && let Err(error) = fuzzing::step_result(reply)
            {
                capped(&error);
            }
        }
        2 => {
            if let Ok(reply) = proto::HookVerdict::decode(bytes) {
                match fuzzing::hook_verdict(reply) {
                    Ok(HookVerdict::Deny(reason) | HookVerdict::Ask(reason)) => {
                        // The cap, and the note of the whole length past it.
                        assert!(reason.chars().count() <= MAX_TEXT_CHARS + 40);
                        assert!(
                            !reason.chars().any(|c| c.is_control() && c != '\n' && c != '\t'),
                            "a control character passed on: {reason:?}"
                        );
                    }
                    Ok(_) => {}
                    Err(error) => capped(&error),
                }
            }
        }
        3 => {
            if let Ok(reply) = proto::InitResponse::decode(bytes)
                && fuzzing::init(&reply).is_ok()
            {
                let version = semver_major(&reply.protocol_version);
                assert_eq!(version, Some(1), "accepted `{}`", reply.protocol_version);
            }
        }
        4 => {
            if let Ok(reply) = proto::DescribeResponse::decode(bytes) {
                let instance = serde_json::json!({"text": "hello", "n": 1});
                if let Ok(tools) = fuzzing::describe(reply, &instance) {
                    let mut names: Vec<&str> = tools.iter().map(|t| t.name.as_str()).collect();
                    for name in &names {
                        assert!(
                            !name.is_empty()
                                && name.bytes().all(|b| b.is_ascii_lowercase()
                                    || b.is_ascii_digit()
                                    || b == b'_'
                                    || b == b'-'),
                            "tool name `{name}` accepted"
                        );
                    }
                    names.sort_unstable();
                    let count = names.len();
                    names.dedup();
                    assert_eq!(names.len(), count, "a tool described twice was accepted");
                    for tool in &tools {
                        assert_eq!(tool.valid, tool.errors.is_empty(), "{}", tool.name);
                    }
                }
            }
        }
        _ => {
            if let Ok(request) = proto::HttpSendRequest::decode(bytes) {
                http_send(&request);
            }
        }
    }
});

fn capped(error: &ToolError) {
    let text = match error {
        ToolError::Denied { rule, .. } => rule,
        ToolError::InvalidInput(text) | ToolError::Failed(text) => text,
    };
    // The host's own words around the plugin's text are short.
    assert!(
        text.chars().count() <= MAX_TEXT_CHARS + 200,
        "{} characters of plugin text passed on",
        text.chars().count()
    );
}

fn semver_major(text: &str) -> Option<u64> {
    let core = text.split(['-', '+']).next()?;
    let mut parts = core.split('.');
    let major = parts.next()?.parse().ok()?;
    Some(major)
}

/// The request is decided on `net.connect:<host>:<port>`; when that capability parses (else
/// the request is denied), it must name the address the connection reaches, spelled the one
/// way a deny is written.
fn http_send(request: &proto::HttpSendRequest) {
    let Ok(destination) = fuzzing::http_destination(request) else {
        return;
    };
    let Ok(capability) = Capability::parse(&destination.capability) else {
        return;
    };
    let suffix = format!(":{}", destination.port);
    let decided = capability
        .as_str()
        .strip_prefix("net.connect:")
        .and_then(|rest| rest.strip_suffix(&suffix))
        .unwrap_or_else(|| panic!("`{capability}` lost its shape"));
    let reached = sigil_fuzz::net::reached(&destination.connect_host);
    assert_eq!(
        decided,
        reached.canonical(),
        "`{}` is decided as `{capability}` but connects to {reached:?}",
        request.url
    );
}
