//! Every kind of error, each with its message, exact position and offending value.

use sigil_manifest::{Diagnostic, Format, Rules, parse_str, parse_str_with};

/// A valid manifest; rows below break it in one place. Line numbers:
/// 1 id, 2 name, 3 version, 4 description, 5 kinds, 6 engine, 7 blank,
/// 8 `[execution]`, 9 tier, 10 entry.
const BASE_TOML: &str = r#"id = "demo"
name = "Demo"
version = "0.1.0"
description = "A demo."
kinds = ["tool"]
engine = "*"

[execution]
tier = "wasm"
entry = "demo.wasm"
"#;

/// The same manifest in YAML. Line numbers:
/// 1 id, 2 name, 3 version, 4 description, 5 kinds, 6 engine, 7 `execution:`, 8 tier, 9 entry.
const BASE_YAML: &str = r#"id: demo
name: Demo
version: 0.1.0
description: A demo.
kinds: [tool]
engine: "*"
execution:
  tier: wasm
  entry: demo.wasm
"#;

/// One expected diagnostic: message substring, line, column, offending value.
type Expected = (&'static str, u32, u32, Option<&'static str>);

/// A row: name, format, edit of the base (`old` replaced by `new`; empty `old` appends), and the
/// single diagnostic expected.
struct Row {
    name: &'static str,
    format: Format,
    old: &'static str,
    new: &'static str,
    expected: Expected,
}

const fn toml(name: &'static str, old: &'static str, new: &'static str, expected: Expected) -> Row {
    Row {
        name,
        format: Format::Toml,
        old,
        new,
        expected,
    }
}

const fn yaml(name: &'static str, old: &'static str, new: &'static str, expected: Expected) -> Row {
    Row {
        name,
        format: Format::Yaml,
        old,
        new,
        expected,
    }
}

fn text(row: &Row) -> String {
    let base = match row.format {
        Format::Toml => BASE_TOML,
        Format::Yaml => BASE_YAML,
    };
    if row.old.is_empty() {
        format!("{base}{}", row.new)
    } else {
        assert!(
            base.contains(row.old),
            "{}: `{}` not in base",
            row.name,
            row.old
        );
        base.replacen(row.old, row.new, 1)
    }
}

fn diagnostics(text: &str, format: Format) -> Vec<Diagnostic> {
    let file = match format {
        Format::Toml => "plugin.toml",
        Format::Yaml => "plugin.yaml",
    };
    // The host's reserved command names arrive as a rule; here, two of them.
    let rules = Rules {
        reserved_commands: &["serve", "plugin"],
    };
    match parse_str_with(text, format, file, &rules) {
        Ok(_) => Vec::new(),
        Err(errors) => errors.diagnostics,
    }
}

#[test]
fn bases_are_valid() {
    assert_eq!(diagnostics(BASE_TOML, Format::Toml), []);
    assert_eq!(diagnostics(BASE_YAML, Format::Yaml), []);
}

const ROWS: &[Row] = &[
    // Syntax.
    toml(
        "toml syntax error",
        "name = \"Demo\"",
        "name = \"Demo",
        (
            "invalid toml: invalid basic string, expected `\"`",
            2,
            13,
            Some("name = \"Demo"),
        ),
    ),
    toml(
        "toml duplicate key",
        "engine = \"*\"",
        "engine = \"*\"\nid = \"again\"",
        ("invalid toml: duplicate key", 7, 1, Some("id")),
    ),
    yaml(
        "yaml syntax error",
        "kinds: [tool]",
        "kinds: [tool",
        (
            "invalid yaml: illegal placement of ':' indicator",
            6,
            7,
            Some("engine: \"*\""),
        ),
    ),
    yaml(
        "yaml duplicate key",
        "engine: \"*\"",
        "engine: \"*\"\nid: again",
        (
            "invalid yaml: duplicated key in mapping",
            7,
            1,
            Some("id: again"),
        ),
    ),
    // Unknown fields.
    toml(
        "unknown top-level field",
        "engine = \"*\"",
        "engine = \"*\"\ncolour = \"red\"",
        ("unknown field `colour`", 7, 1, Some("colour")),
    ),
    toml(
        "unknown nested field",
        "",
        "entrypoint = \"demo.wasm\"\n",
        (
            "unknown field `entrypoint` in `execution`; did you mean `entry`?",
            11,
            1,
            Some("entrypoint"),
        ),
    ),
    toml(
        "trust_level is refused with the reason",
        "\n[execution]",
        "trust_level = \"trusted\"\n[execution]",
        (
            "unknown field `trust_level`; a manifest cannot declare its own trust: trust comes from a verified signature",
            7,
            1,
            Some("trust_level"),
        ),
    ),
    yaml(
        "yaml unknown nested field",
        "  entry: demo.wasm",
        "  entry: demo.wasm\n  memory: 64",
        (
            "unknown field `memory` in `execution`",
            10,
            3,
            Some("memory"),
        ),
    ),
    // Shapes.
    toml(
        "wrong type",
        "kinds = [\"tool\"]",
        "kinds = \"tool\"",
        ("`kinds` must be a list, found a string", 5, 9, Some("tool")),
    ),
    yaml(
        "yaml wrong type",
        "name: Demo",
        "name: 42",
        (
            "`name` must be a string, found an integer; put it in quotes",
            2,
            7,
            Some("42"),
        ),
    ),
    toml(
        "missing required field",
        "engine = \"*\"\n",
        "",
        ("missing required field `engine`", 1, 1, None),
    ),
    toml(
        "empty kinds",
        "kinds = [\"tool\"]",
        "kinds = []",
        ("`kinds` must list at least one entry", 5, 9, Some("[]")),
    ),
    // Versions.
    toml(
        "bad semver version",
        "version = \"0.1.0\"",
        "version = \"1.0\"",
        ("version `1.0` is not valid semver: ", 3, 11, Some("1.0")),
    ),
    toml(
        "bad engine range",
        "engine = \"*\"",
        "engine = \">=banana\"",
        (
            "engine `>=banana` is not a valid semver range: ",
            6,
            10,
            Some(">=banana"),
        ),
    ),
    toml(
        "bad dependency range",
        "",
        "\n[dependencies]\nhttp-client = \"about 1\"\n",
        (
            "dependency `http-client` has an invalid semver range `about 1`: ",
            13,
            15,
            Some("about 1"),
        ),
    ),
    toml(
        "bad dependency id",
        "",
        "\n[dependencies]\nHttpClient = \"1\"\n",
        (
            "dependency: plugin id `HttpClient` must be kebab-case",
            13,
            1,
            Some("HttpClient"),
        ),
    ),
    // Capabilities.
    toml(
        "invalid capability",
        "",
        "\n[capabilities]\nrequest = [{ capability = \"fs.read:data\", reason = \"read data\" }]\n",
        (
            "capability `fs.read:data` is invalid: path `data` must be absolute",
            13,
            27,
            Some("fs.read:data"),
        ),
    ),
    toml(
        "capability requested and denied",
        "",
        "\n[capabilities]\nrequest = [{ capability = \"kv.read\", reason = \"cache\" }]\n\
         deny = [{ capability = \"kv.read\", reason = \"no cache\" }]\n",
        (
            "capability `kv.read` is both requested and denied",
            14,
            24,
            Some("kv.read"),
        ),
    ),
    toml(
        "capability requested twice",
        "",
        "\n[capabilities]\nrequest = [\n  { capability = \"kv.read\", reason = \"a\" },\n  \
         { capability = \"kv.read\", reason = \"b\" },\n]\n",
        (
            "capability `kv.read` is requested twice",
            15,
            18,
            Some("kv.read"),
        ),
    ),
    toml(
        "missing reason",
        "",
        "\n[capabilities]\nrequest = [{ capability = \"kv.read\" }]\n",
        (
            "missing required field `reason` in `capabilities.request[0]`",
            13,
            12,
            None,
        ),
    ),
    toml(
        "empty reason",
        "",
        "\n[capabilities]\nrequest = [{ capability = \"kv.read\", reason = \"\" }]\n",
        (
            "`capabilities.request[0].reason` must not be empty",
            13,
            47,
            Some(""),
        ),
    ),
    // Enumerations.
    toml(
        "bad tier",
        "tier = \"wasm\"",
        "tier = \"vm\"",
        (
            "`execution.tier` must be one of `builtin`, `wasm`, `process`, `container`",
            9,
            8,
            Some("vm"),
        ),
    ),
    toml(
        "bad kind",
        "kinds = [\"tool\"]",
        "kinds = [\"tool\", \"widget\"]",
        (
            "`kinds[1]` must be one of `tool`, `channel`, `provider`",
            5,
            18,
            Some("widget"),
        ),
    ),
    toml(
        "bad scope",
        "",
        "\n[actions.restart]\nscope = \"galaxy\"\nmutates_state = true\nreversible = false\n",
        (
            "`actions.restart.scope` must be one of `vm`, `container`, `host`, `network`",
            13,
            9,
            Some("galaxy"),
        ),
    ),
    toml(
        "bad hook event",
        "",
        "\n[[hooks]]\nevent = \"on_boot\"\n",
        (
            "`hooks[0].event` must be one of `before_agent_run`",
            13,
            9,
            Some("on_boot"),
        ),
    ),
    yaml(
        "yaml bad tier",
        "  tier: wasm",
        "  tier: vm",
        (
            "`execution.tier` must be one of `builtin`",
            8,
            9,
            Some("vm"),
        ),
    ),
    // Execution.
    toml(
        "entry missing for wasm",
        "entry = \"demo.wasm\"\n",
        "",
        (
            "missing `execution.entry`: the wasm tier needs an entry to run",
            8,
            2,
            None,
        ),
    ),
    yaml(
        "yaml entry missing for wasm",
        "  entry: demo.wasm\n",
        "",
        (
            "missing `execution.entry`: the wasm tier needs an entry to run",
            7,
            1,
            None,
        ),
    ),
    toml(
        "entry with ..",
        "entry = \"demo.wasm\"",
        "entry = \"../outside/demo.wasm\"",
        (
            "`execution.entry` `../outside/demo.wasm` must not contain `..`",
            10,
            9,
            Some("../outside/demo.wasm"),
        ),
    ),
    toml(
        "absolute entry",
        "entry = \"demo.wasm\"",
        "entry = \"/usr/bin/demo\"",
        (
            "must be a relative path inside the plugin directory",
            10,
            9,
            Some("/usr/bin/demo"),
        ),
    ),
    toml(
        "zero limit",
        "",
        "\n[execution.limits]\nmemory_mib = 0\n",
        (
            "`execution.limits.memory_mib` must be at least 1",
            13,
            14,
            Some("0"),
        ),
    ),
    toml(
        "fuel outside wasm",
        "tier = \"wasm\"\nentry = \"demo.wasm\"",
        "tier = \"process\"\nentry = \"bin/demo\"\nlimits = { fuel = 1000 }",
        (
            "`execution.limits.fuel` applies only to the wasm tier",
            11,
            19,
            Some("1000"),
        ),
    ),
    toml(
        "mcp protocol outside the process tier",
        "entry = \"demo.wasm\"",
        "entry = \"demo.wasm\"\nprotocol = \"mcp\"",
        (
            "`execution.protocol = \"mcp\"` applies only to the process tier",
            11,
            12,
            Some("mcp"),
        ),
    ),
    toml(
        "unknown protocol",
        "tier = \"wasm\"\nentry = \"demo.wasm\"",
        "tier = \"process\"\nentry = \"bin/demo\"\nprotocol = \"http\"",
        (
            "`execution.protocol` must be one of `grpc`, `mcp`",
            11,
            12,
            Some("http"),
        ),
    ),
    toml(
        "sandbox path not absolute",
        "",
        "\n[execution.sandbox]\nfs = [{ path = \"data\", access = \"read\" }]\n",
        (
            "sandbox path `data` must be an absolute path",
            13,
            16,
            Some("data"),
        ),
    ),
    toml(
        "bad egress",
        "",
        "\n[execution.sandbox]\negress = [\"api.github.com\"]\n",
        (
            "egress `api.github.com` must be `host:port`",
            13,
            11,
            Some("api.github.com"),
        ),
    ),
    toml(
        "bad env name",
        "",
        "\n[execution.env]\n\"1ST\" = \"x\"\n",
        (
            "environment variable name `1ST` is invalid",
            13,
            1,
            Some("1ST"),
        ),
    ),
    // Config.
    toml(
        "config schema that is not a json schema",
        "",
        "\n[config.schema]\ntype = \"object\"\nminProperties = -1\n",
        (
            "`config.schema` is not a valid json schema: ",
            14,
            17,
            Some("-1"),
        ),
    ),
    toml(
        "config schema that is not an object schema",
        "",
        "\n[config.schema]\ntype = \"string\"\n",
        (
            "`config.schema` must describe a table: its `type` must be `object`",
            13,
            8,
            Some("string"),
        ),
    ),
    toml(
        "config secret flag that is not a boolean",
        "",
        "\n[config.schema]\ntype = \"object\"\nproperties.token = { type = \"string\", secret = \"yes\" }\n",
        (
            "`secret` of config property `token` must be true or false",
            14,
            48,
            Some("yes"),
        ),
    ),
    // Identity.
    toml(
        "bad id",
        "id = \"demo\"",
        "id = \"Demo_Plugin\"",
        (
            "plugin id `Demo_Plugin` must be kebab-case",
            1,
            6,
            Some("Demo_Plugin"),
        ),
    ),
    toml(
        "id too long",
        "id = \"demo\"",
        "id = \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"",
        (
            "is longer than 64 characters",
            1,
            6,
            Some("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
        ),
    ),
    // Commands and hooks.
    toml(
        "bad command name",
        "",
        "\n[[commands]]\nname = \"Sync\"\ndescription = \"Sync now.\"\n",
        (
            "command name `Sync` is invalid: use lowercase letters",
            13,
            8,
            Some("Sync"),
        ),
    ),
    toml(
        "reserved command name",
        "",
        "\n[[commands]]\nname = \"serve\"\ndescription = \"Serve.\"\n",
        (
            "command name `serve` is reserved by sigil",
            13,
            8,
            Some("serve"),
        ),
    ),
    toml(
        "require_auth command without capability",
        "",
        "\n[[commands]]\nname = \"sync\"\ndescription = \"Sync now.\"\nrequire_auth = true\n",
        (
            "command `sync` sets `require_auth` but names no `capability`",
            15,
            16,
            Some("true"),
        ),
    ),
    toml(
        "command with an invalid capability",
        "",
        "\n[[commands]]\nname = \"sync\"\ndescription = \"Sync now.\"\nrequire_auth = true\ncapability = \"secret.use:\"\n",
        (
            "capability `secret.use:` is invalid: ",
            16,
            14,
            Some("secret.use:"),
        ),
    ),
    toml(
        "hook priority out of range",
        "",
        "\n[[hooks]]\nevent = \"session_end\"\npriority = 4000000000\n",
        (
            "`hooks[0].priority` must be at most 2147483647",
            14,
            12,
            Some("4000000000"),
        ),
    ),
    toml(
        "hook event twice",
        "",
        "\n[[hooks]]\nevent = \"session_end\"\n[[hooks]]\nevent = \"session_end\"\n",
        (
            "hook event `session_end` is subscribed twice",
            15,
            9,
            Some("session_end"),
        ),
    ),
];

#[test]
fn each_error_kind_is_located_with_its_value() {
    let mut failures = Vec::new();
    for row in ROWS {
        let text = text(row);
        let found = diagnostics(&text, row.format);
        let (message, line, column, value) = row.expected;
        let ok = match found.as_slice() {
            [d] => {
                d.message.contains(message)
                    && d.line == line
                    && d.column == column
                    && d.value.as_deref() == value
            }
            _ => false,
        };
        if !ok {
            failures.push(format!(
                "{}: expected {line}:{column} `{message}` (value {value:?}), found:\n{}",
                row.name,
                found
                    .iter()
                    .map(|d| format!("  {d} [value {:?}, pointer {}]", d.value, d.pointer))
                    .collect::<Vec<_>>()
                    .join("\n")
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn messages_are_lowercase() {
    for row in ROWS {
        for d in diagnostics(&text(row), row.format) {
            let first = d.message.chars().next().unwrap_or('x');
            assert!(!first.is_uppercase(), "{}: {}", row.name, d.message);
        }
    }
}

#[test]
fn every_error_is_reported_at_once_in_document_order() {
    let text = r#"id = "Bad_Id"
name = "Demo"
version = "one"
description = "A demo."
kinds = ["tool", "gadget"]
engine = "*"
trust_level = "root"

[capabilities]
request = [
  { capability = "kv.read" },
  { capability = "fs.read:etc", reason = "config" },
]

[execution]
tier = "wasm"
entry = "../demo.wasm"
limits = { timeout_ms = 0 }

[[commands]]
name = "go"
description = "Go."
require_auth = true
"#;
    let found: Vec<(u32, u32, String)> = diagnostics(text, Format::Toml)
        .into_iter()
        .map(|d| (d.line, d.column, d.message))
        .collect();
    let expected: &[(u32, u32, &str)] = &[
        (1, 6, "plugin id `Bad_Id` must be kebab-case"),
        (3, 11, "version `one` is not valid semver"),
        (5, 18, "`kinds[1]` must be one of"),
        (7, 1, "unknown field `trust_level`"),
        (11, 3, "missing required field `reason`"),
        (12, 18, "capability `fs.read:etc` is invalid"),
        (
            17,
            9,
            "`execution.entry` `../demo.wasm` must not contain `..`",
        ),
        (18, 25, "`execution.limits.timeout_ms` must be at least 1"),
        (
            23,
            16,
            "command `go` sets `require_auth` but names no `capability`",
        ),
    ];
    assert_eq!(found.len(), expected.len(), "{found:#?}");
    for ((line, column, message), (want_line, want_column, want)) in found.iter().zip(expected) {
        assert_eq!((line, column), (want_line, want_column), "{message}");
        assert!(message.contains(want), "{message} should contain {want}");
    }
}

#[test]
fn yaml_reports_every_error_with_positions() {
    let text = "id: demo\nname: Demo\nversion: 0.1.0\ndescription: A demo.\nkinds: [tool]\n\
                engine: '*'\ntrust_level: high\nexecution:\n  tier: wasm\n  limits:\n    \
                memory_mib: 0\ncapabilities:\n  request:\n    - capability: fs.read:rel\n      \
                reason: because\n";
    let found: Vec<(u32, u32, String, Option<String>)> = diagnostics(text, Format::Yaml)
        .into_iter()
        .map(|d| (d.line, d.column, d.message, d.value))
        .collect();
    let expected: &[(u32, u32, &str, Option<&str>)] = &[
        (7, 1, "unknown field `trust_level`", Some("trust_level")),
        (8, 1, "missing `execution.entry`", None),
        (
            11,
            17,
            "`execution.limits.memory_mib` must be at least 1",
            Some("0"),
        ),
        (
            14,
            19,
            "capability `fs.read:rel` is invalid",
            Some("fs.read:rel"),
        ),
    ];
    assert_eq!(found.len(), expected.len(), "{found:#?}");
    for (got, want) in found.iter().zip(expected) {
        assert_eq!((got.0, got.1), (want.0, want.1), "{}", got.2);
        assert!(
            got.2.contains(want.2),
            "{} should contain {}",
            got.2,
            want.2
        );
        assert_eq!(got.3.as_deref(), want.3);
    }
}

#[test]
fn yaml_only_problems() {
    let cases: &[(&str, &str, u32, u32)] = &[
        ("", "the manifest is empty", 1, 1),
        (
            "id: a\n---\nid: b\n",
            "a manifest holds exactly one yaml document",
            3,
            1,
        ),
        (
            "id: !custom demo\n",
            "yaml tag `!custom` is not supported",
            1,
            5,
        ),
        (
            "[1, 2]\n",
            "the manifest must be a table, found a list",
            1,
            1,
        ),
        (
            "id: .nan\n",
            "infinite and nan floats are not allowed",
            1,
            5,
        ),
    ];
    for (text, message, line, column) in cases {
        let found = diagnostics(text, Format::Yaml);
        assert!(
            found
                .iter()
                .any(|d| d.message.contains(message) && d.line == *line && d.column == *column),
            "{text:?}: expected {line}:{column} {message}, found {found:#?}"
        );
    }
}

#[test]
fn display_names_file_line_column_and_value() {
    let text = BASE_TOML.replace("version = \"0.1.0\"", "version = \"1.0\"");
    let errors = parse_str(&text, Format::Toml, "plugins/demo/plugin.toml")
        .err()
        .map(|e| e.to_string());
    assert_eq!(
        errors.as_deref().unwrap_or("no error"),
        "plugins/demo/plugin.toml:3:11: version `1.0` is not valid semver: \
         unexpected end of input while parsing minor version number"
    );
    let text = BASE_TOML.replace("kinds = [\"tool\"]", "kinds = \"tool\"");
    let errors = parse_str(&text, Format::Toml, "plugin.toml")
        .err()
        .map(|e| e.to_string());
    assert_eq!(
        errors.as_deref(),
        Some("plugin.toml:5:9: `kinds` must be a list, found a string (value: `tool`)")
    );
}

#[test]
fn reserved_command_names_come_from_the_host() {
    let text = include_str!("fixtures/full.toml");
    assert!(parse_str(text, Format::Toml, "plugin.toml").is_ok());
    let rules = Rules {
        reserved_commands: &["gh-sync"],
    };
    let diagnostics = parse_str_with(text, Format::Toml, "plugin.toml", &rules)
        .err()
        .map(|errors| errors.diagnostics)
        .unwrap_or_default();
    assert_eq!(diagnostics.len(), 1, "{diagnostics:?}");
    assert!(
        diagnostics[0]
            .message
            .contains("command name `gh-sync` is reserved by sigil")
    );
}
