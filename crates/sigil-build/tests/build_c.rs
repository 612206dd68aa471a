//! Builds real C guests with the machine's clang and WASI sysroot. Without them these tests
//! fail with the `apt-get` command that installs them (`scripts/install-guest-toolchains`):
//! they are never skipped.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use sigil_build::{
    BuildError, CBuild, INSTALL_HINT, Toolchain, build_c, declared_world, inspect_component,
};

fn wit_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../wit")
}

/// A tool plugin that describes one tool and answers every call with `"hi"`.
const TRIVIAL_TOOL: &str = r#"
// sigil-world: tool-plugin
#include "tool_plugin.h"
#include <stdlib.h>

void exports_sigil_plugin_tool_describe(exports_sigil_plugin_tool_list_tool_descriptor_t *ret) {
    ret->len = 1;
    ret->ptr = calloc(1, sizeof *ret->ptr);
    tool_plugin_string_dup(&ret->ptr[0].name, "hi");
    tool_plugin_string_dup(&ret->ptr[0].description, "says hi");
    tool_plugin_string_dup(&ret->ptr[0].input_schema, "{\"type\":\"object\"}");
}
bool exports_sigil_plugin_tool_invoke(exports_sigil_plugin_tool_call_info_t *call,
        exports_sigil_plugin_tool_json_t *input, exports_sigil_plugin_tool_json_t *ret,
        exports_sigil_plugin_tool_tool_error_t *err) {
    tool_plugin_string_dup(ret, "\"hi\"");
    return true;
}
bool exports_sigil_plugin_tool_validate_pre(exports_sigil_plugin_tool_call_info_t *call,
        exports_sigil_plugin_tool_json_t *input, exports_sigil_plugin_tool_tool_error_t *err) {
    return true;
}
bool exports_sigil_plugin_tool_validate_post(exports_sigil_plugin_tool_call_info_t *call,
        exports_sigil_plugin_tool_json_t *input, exports_sigil_plugin_tool_json_t *output,
        exports_sigil_plugin_tool_tool_error_t *err) {
    return true;
}
bool exports_sigil_plugin_tool_rollback(exports_sigil_plugin_tool_call_info_t *call,
        exports_sigil_plugin_tool_json_t *input, exports_sigil_plugin_tool_json_t *maybe_output,
        exports_sigil_plugin_tool_tool_error_t *err) {
    return true;
}
"#;

struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn source(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn request(&self, sources: Vec<PathBuf>, world: &str) -> CBuild {
        CBuild::new(
            sources,
            wit_dir(),
            world,
            self.dir.path().join("out").join("plugin.wasm"),
            self.dir.path().join("scratch"),
        )
    }
}

#[test]
fn a_trivial_c_tool_becomes_a_component_exporting_the_tool_interface() {
    let scratch = Scratch::new();
    let source = scratch.source("hi.c", TRIVIAL_TOOL);
    let request = scratch.request(vec![source], "tool-plugin");

    let component = build_c(&request).unwrap();

    assert_eq!(component, request.output);
    let interfaces = inspect_component(&component).unwrap();
    assert_eq!(interfaces.exports(), ["sigil:plugin/tool@0.1.0"]);
    // Nothing it does not use: no HTTP, no sockets, no filesystem.
    for import in interfaces.imports() {
        assert!(
            !import.starts_with("wasi:http")
                && !import.starts_with("wasi:sockets")
                && !import.starts_with("wasi:filesystem"),
            "unexpected import {import}"
        );
    }
    // Written whole: no temporary file left beside it.
    let siblings: Vec<_> = std::fs::read_dir(component.parent().unwrap())
        .unwrap()
        .collect();
    assert_eq!(siblings.len(), 1);
}

#[test]
fn the_http_world_builds_too() {
    let scratch = Scratch::new();
    let source = scratch.source(
        "hi.c",
        &TRIVIAL_TOOL
            .replace("tool_plugin.h", "tool_plugin_http.h")
            .replace("tool_plugin_string_dup", "tool_plugin_http_string_dup"),
    );
    let component = build_c(&scratch.request(vec![source], "tool-plugin-http")).unwrap();
    assert_eq!(
        inspect_component(&component).unwrap().exports(),
        ["sigil:plugin/tool@0.1.0"]
    );
}

/// Each broken request, and words its error must contain.
#[test]
fn every_failure_names_what_and_where() {
    let scratch = Scratch::new();
    let good = scratch.source("good.c", TRIVIAL_TOOL);
    let broken = scratch.source("broken.c", "int main( {\n");
    let missing = scratch.dir.path().join("missing.c");

    let cases: Vec<(&str, CBuild, Vec<String>)> = vec![
        (
            "no sources",
            scratch.request(vec![], "tool-plugin"),
            vec!["no c source files".into(), "plugin.wasm".into()],
        ),
        (
            "a missing source",
            scratch.request(vec![missing.clone()], "tool-plugin"),
            vec![
                format!("c source {}", missing.display()),
                "not found".into(),
            ],
        ),
        (
            "an unknown world",
            scratch.request(vec![good.clone()], "tool-plugin-ftp"),
            vec![
                "no world `tool-plugin-ftp`".into(),
                "tool-plugin-http".into(),
            ],
        ),
        (
            "a missing wit directory",
            CBuild {
                wit_dir: scratch.dir.path().join("no-wit"),
                ..scratch.request(vec![good.clone()], "tool-plugin")
            },
            vec!["wit package".into(), "no-wit".into()],
        ),
        (
            "c that does not compile",
            scratch.request(vec![broken.clone()], "tool-plugin"),
            vec![broken.display().to_string(), "error".into()],
        ),
        (
            "c that lacks the exports",
            scratch.request(
                vec![scratch.source("empty.c", "int unused;\n")],
                "tool-plugin",
            ),
            vec!["undefined".into(), "exports_sigil_plugin_tool".into()],
        ),
    ];

    for (what, request, words) in cases {
        let error = build_c(&request).expect_err(what).to_string();
        for word in &words {
            assert!(
                error.contains(word.as_str()),
                "{what}: `{word}` not in: {error}"
            );
        }
        assert!(!request.output.exists(), "{what}: left an output behind");
    }
}

#[test]
fn a_missing_clang_says_what_to_install() {
    let error = Toolchain::with_clang(PathBuf::from("sigil-no-such-clang")).unwrap_err();
    assert!(matches!(error, BuildError::Toolchain { .. }));
    let message = error.to_string();
    assert!(message.contains("sigil-no-such-clang"), "{message}");
    assert!(message.ends_with(INSTALL_HINT), "{message}");
    assert_eq!(
        INSTALL_HINT,
        "apt-get install -y clang lld wasi-libc libclang-rt-14-dev-wasm32"
    );
}

#[test]
fn the_toolchain_here_is_complete() {
    let toolchain = Toolchain::detect().unwrap_or_else(|e| panic!("{e}"));
    assert!(toolchain.linker().is_file());
    assert!(toolchain.builtins().is_file());
}

#[test]
fn sources_declare_their_world() {
    let cases = [
        ("// sigil-world: tool-plugin\n", Some("tool-plugin")),
        (
            "  //sigil-world:   tool-plugin-http  \n#include <x.h>\n",
            Some("tool-plugin-http"),
        ),
        (
            "#include <x.h>\n// sigil-world: tool-plugin\n",
            Some("tool-plugin"),
        ),
        ("// sigil-world:\n", None),
        ("/* sigil-world: tool-plugin */\n", None),
        ("int x; // sigil-world: tool-plugin\n", None),
        ("", None),
    ];
    for (source, world) in cases {
        assert_eq!(declared_world(source), world, "{source:?}");
    }
}

#[test]
fn inspecting_something_that_is_not_a_component_fails_naming_it() {
    let scratch = Scratch::new();
    let path = scratch.source("core.wasm", "\0asm\x01\0\0\0");
    let message = inspect_component(&path).unwrap_err().to_string();
    assert!(
        message.contains("core.wasm") && message.contains("not a webassembly component"),
        "{message}"
    );
}
