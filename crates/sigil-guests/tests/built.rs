//! Every fixture and example is built, is a valid component, exports the tool interface, and
//! imports what its world allows and no more.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use sigil_build::inspect_component;

const TOOL: &str = "sigil:plugin/tool@0.1.0";

#[test]
fn every_component_is_built_and_exports_the_tool_interface() {
    assert!(sigil_guests::NAMES.len() >= 6, "{:?}", sigil_guests::NAMES);
    for name in sigil_guests::NAMES {
        let interfaces =
            inspect_component(&sigil_guests::path(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(interfaces.exports(), [TOOL], "{name}");
    }
}

#[test]
fn the_constants_name_built_components() {
    let constants = [
        ("hostile", sigil_guests::HOSTILE),
        ("hostile_http", sigil_guests::HOSTILE_HTTP),
        ("hello", sigil_guests::HELLO),
        ("examples/hello-c", sigil_guests::EXAMPLE_HELLO_C),
        ("examples/http-c", sigil_guests::EXAMPLE_HTTP_C),
        ("examples/fs-c", sigil_guests::EXAMPLE_FS_C),
    ];
    for (name, constant) in constants {
        assert!(
            sigil_guests::NAMES.contains(&name),
            "{name} missing from NAMES"
        );
        assert_eq!(sigil_guests::path(name), Path::new(constant));
        assert!(Path::new(constant).is_file(), "{constant}");
    }
}

/// Which import prefixes each component must and must not have. (The HTTP example uses
/// `snprintf`, whose stdio brings WASI filesystem imports through the preview1 adapter; with
/// no preopens they reach nothing.)
#[test]
fn imports_follow_the_world() {
    let cases: [(&str, &[&str], &[&str]); 6] = [
        (
            sigil_guests::HELLO,
            &[],
            &["wasi:", "sigil:plugin/kv", "sigil:plugin/secrets"],
        ),
        (
            sigil_guests::HOSTILE,
            &[
                "sigil:plugin/log",
                "sigil:plugin/kv",
                "sigil:plugin/config",
                "sigil:plugin/secrets",
                "wasi:filesystem/preopens",
            ],
            &["wasi:http", "wasi:sockets"],
        ),
        (
            sigil_guests::HOSTILE_HTTP,
            &["wasi:http/outgoing-handler", "sigil:plugin/secrets"],
            &["wasi:sockets", "wasi:filesystem"],
        ),
        (
            sigil_guests::EXAMPLE_HELLO_C,
            &[],
            &["wasi:", "sigil:plugin/secrets"],
        ),
        (
            sigil_guests::EXAMPLE_HTTP_C,
            &[
                "wasi:http/outgoing-handler",
                "sigil:plugin/secrets",
                "sigil:plugin/config",
            ],
            &["wasi:sockets"],
        ),
        (
            sigil_guests::EXAMPLE_FS_C,
            &["wasi:filesystem/preopens"],
            &["wasi:http", "wasi:sockets"],
        ),
    ];
    for (component, required, forbidden) in cases {
        let interfaces = inspect_component(Path::new(component)).unwrap();
        let imports = interfaces.imports();
        for prefix in required {
            assert!(
                imports.iter().any(|i| i.starts_with(prefix)),
                "{component} lacks {prefix}: {imports:?}"
            );
        }
        for prefix in forbidden {
            assert!(
                !imports.iter().any(|i| i.starts_with(prefix)),
                "{component} has {prefix}: {imports:?}"
            );
        }
    }
}
