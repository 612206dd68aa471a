//! A failed tool call has one code on every front end: the HTTP API's `code`, MCP's
//! `sigil/error` and the command line's `[code]` all come from `InvokeError::code`. Each code
//! is distinct and documented where clients look for it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;

use sigil_runtime::{InvokeError, State, Step};

fn every_kind() -> Vec<InvokeError> {
    vec![
        InvokeError::BadTarget("x".into()),
        InvokeError::Denied { rule: "r".into() },
        InvokeError::NotRunning {
            plugin: "p".into(),
            state: State::Stopped,
            reason: None,
        },
        InvokeError::UnknownTool {
            plugin: "p".into(),
            tool: "t".into(),
            available: Vec::new(),
        },
        InvokeError::Held {
            plugin: "p".into(),
            tool: "t".into(),
            reason: "r".into(),
        },
        InvokeError::InvalidArguments {
            target: "p/t".into(),
            errors: Vec::new(),
        },
        InvokeError::HookDenied {
            hook: "h".into(),
            reason: "r".into(),
        },
        InvokeError::Failed {
            step: Step::Invoke,
            error: "e".into(),
            rollback: None,
        },
        InvokeError::ApprovalDenied {
            plugin: "p".into(),
            tool: "t".into(),
            approval: None,
            reason: "r".into(),
        },
        InvokeError::Audit("a".into()),
    ]
}

#[test]
fn each_kind_of_failure_has_its_own_documented_code() {
    let docs = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/gateway.md"),
    )
    .unwrap();
    let kinds = every_kind();
    let codes: BTreeSet<&str> = kinds.iter().map(InvokeError::code).collect();
    assert_eq!(
        codes.len(),
        kinds.len(),
        "two kinds share a code: {codes:?}"
    );
    for code in codes {
        assert!(
            code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
            "{code}"
        );
        assert!(
            docs.contains(&format!("`{code}`")),
            "docs/gateway.md does not document `{code}`"
        );
    }
}
