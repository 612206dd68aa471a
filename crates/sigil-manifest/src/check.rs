//! Checks of meaning that a JSON Schema cannot express: semver, capability grammar, paths,
//! duplicates, and rules that tie fields together.
//!
//! They run on the JSON tree, not on the typed structs, so they still run when the schema pass
//! found problems elsewhere: an author sees every error at once. A value of the wrong shape is
//! skipped here; the schema pass has already reported it.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value};
use sigil_policy::Pattern;

use crate::diagnostic::{Diagnostic, render_value};
use crate::pointer::{child, display_path};
use crate::spans::SpanIndex;
use crate::types::PluginId;

/// Runs every check and returns what failed.
pub(crate) fn check(
    manifest: &Value,
    index: &SpanIndex,
    file: &str,
    rules: &crate::Rules<'_>,
) -> Vec<Diagnostic> {
    let mut checker = Checker {
        root: manifest,
        index,
        file,
        reserved: rules.reserved_commands,
        out: Vec::new(),
    };
    checker.identity();
    checker.dependencies();
    checker.capabilities();
    checker.execution();
    checker.config();
    checker.actions();
    checker.hooks();
    checker.commands();
    checker.out
}

/// Parses a capability pattern, with a message that names the value once.
pub(crate) fn parse_capability(text: &str) -> Result<Pattern, String> {
    Pattern::parse(text).map_err(|error| {
        let message = error.to_string();
        // The policy error may already start by quoting the text; don't quote it twice.
        let prefix = format!("capability `{text}`: ");
        let reason = message.strip_prefix(&prefix).unwrap_or(&message);
        format!("capability `{text}` is invalid: {reason}")
    })
}

/// Why `entry` is not a safe path inside the plugin directory, if it is not.
pub(crate) fn entry_problem(entry: &str) -> Option<&'static str> {
    if entry.trim().is_empty() {
        return Some("must not be empty");
    }
    let drive_letter = entry.get(1..2) == Some(":");
    if entry.starts_with('/') || entry.starts_with('\\') || drive_letter {
        return Some("must be a relative path inside the plugin directory");
    }
    if entry.split(['/', '\\']).any(|part| part == "..") {
        return Some("must not contain `..`");
    }
    None
}

/// Why a sandbox mount path is not acceptable, if it is not.
fn mount_problem(path: &str) -> Option<&'static str> {
    if !path.starts_with('/') {
        return Some("must be an absolute path");
    }
    if path.split('/').any(|part| part == "..") {
        return Some("must not contain `..`");
    }
    None
}

/// A `host:port` egress destination, parsed; `None` port means any port (`*`).
pub(crate) fn parse_egress(text: &str) -> Result<(String, Option<u16>), &'static str> {
    const SHAPE: &str = "must be `host:port`, with a port number or `*`";
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (address, after) = rest.split_once(']').ok_or(SHAPE)?;
        let port = after.strip_prefix(':').ok_or(SHAPE)?;
        if address.is_empty() || !address.chars().all(|c| c.is_ascii_hexdigit() || c == ':') {
            return Err("has an invalid ipv6 address");
        }
        (format!("[{}]", address.to_ascii_lowercase()), port)
    } else {
        let (host, port) = text.rsplit_once(':').ok_or(SHAPE)?;
        let labels_ok = !host.is_empty()
            && host.split('.').enumerate().all(|(i, label)| {
                (i == 0 && label == "*")
                    || (!label.is_empty()
                        && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
            });
        if !labels_ok {
            return Err("has an invalid host: use letters, digits, `-` and `.`, or `*.` first");
        }
        (host.to_ascii_lowercase(), port)
    };
    let port = match port {
        "*" => None,
        digits => match digits.parse::<u16>() {
            Ok(0) | Err(_) => return Err("has an invalid port: use 1 to 65535 or `*`"),
            Ok(port) => Some(port),
        },
    };
    Ok((host, port))
}

/// Names of the `secret: true` properties of a config schema, nested ones as `outer.inner`.
pub(crate) fn secret_fields(schema: &Map<String, Value>) -> Vec<String> {
    let mut out = Vec::new();
    collect_secrets(schema, "", &mut out);
    out
}

fn collect_secrets(schema: &Map<String, Value>, prefix: &str, out: &mut Vec<String>) {
    let Some(Value::Object(properties)) = schema.get("properties") else {
        return;
    };
    for (name, property) in properties {
        let Value::Object(property) = property else {
            continue;
        };
        let full = format!("{prefix}{name}");
        if property.get("secret") == Some(&Value::Bool(true)) {
            out.push(full.clone());
        }
        collect_secrets(property, &format!("{full}."), out);
    }
}

fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn is_command_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

fn is_action_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

struct Checker<'a> {
    /// Command names the host uses itself.
    reserved: &'a [&'a str],
    root: &'a Value,
    index: &'a SpanIndex,
    file: &'a str,
    out: Vec<Diagnostic>,
}

impl<'a> Checker<'a> {
    /// Reports a problem with the value at `pointer`.
    fn error(&mut self, pointer: &str, message: String) {
        let value = self.root.pointer(pointer).map(render_value);
        let pos = self.index.value(pointer);
        self.push(pos, pointer, message, value);
    }

    /// Reports a problem with the key naming the member at `pointer`.
    fn key_error(&mut self, pointer: &str, key: &str, message: String) {
        let pos = self.index.key(pointer);
        self.push(pos, pointer, message, Some(key.to_owned()));
    }

    /// Reports something missing from the table at `pointer`.
    fn missing(&mut self, pointer: &str, message: String) {
        let pos = self.index.key(pointer);
        self.push(pos, pointer, message, None);
    }

    fn push(
        &mut self,
        pos: crate::spans::Pos,
        pointer: &str,
        message: String,
        value: Option<String>,
    ) {
        self.out.push(Diagnostic {
            file: self.file.to_owned(),
            line: pos.line,
            column: pos.column,
            pointer: pointer.to_owned(),
            message,
            value,
        });
    }

    fn path(&self, pointer: &str) -> String {
        display_path(self.root, pointer)
    }

    fn str_at(&self, pointer: &str) -> Option<&'a str> {
        self.root.pointer(pointer).and_then(Value::as_str)
    }

    fn object_at(&self, pointer: &str) -> Option<&'a Map<String, Value>> {
        self.root.pointer(pointer).and_then(Value::as_object)
    }

    /// The elements of the list at `pointer` with their pointers; nothing if it is not a list.
    fn items(&self, pointer: &str) -> Vec<(String, &'a Value)> {
        self.root
            .pointer(pointer)
            .and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| (child(pointer, &i.to_string()), item))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn identity(&mut self) {
        if let Some(id) = self.str_at("/id")
            && let Err(error) = PluginId::new(id)
        {
            self.error("/id", error.to_string());
        }
        if let Some(version) = self.str_at("/version")
            && let Err(error) = semver::Version::parse(version)
        {
            self.error(
                "/version",
                format!("version `{version}` is not valid semver: {error}"),
            );
        }
        if let Some(engine) = self.str_at("/engine")
            && let Err(error) = semver::VersionReq::parse(engine)
        {
            self.error(
                "/engine",
                format!("engine `{engine}` is not a valid semver range: {error}"),
            );
        }
        if let Some(homepage) = self.str_at("/homepage")
            && !(homepage.starts_with("https://") || homepage.starts_with("http://"))
        {
            self.error(
                "/homepage",
                format!("homepage `{homepage}` must be an http or https url"),
            );
        }
        let mut seen = HashMap::new();
        for (pointer, kind) in self.items("/kinds") {
            if let Some(kind) = kind.as_str()
                && seen.insert(kind, pointer.clone()).is_some()
            {
                self.error(&pointer, format!("kind `{kind}` is listed twice"));
            }
        }
    }

    fn dependencies(&mut self) {
        let Some(dependencies) = self.object_at("/dependencies") else {
            return;
        };
        let own_id = self.str_at("/id");
        for (name, range) in dependencies {
            let pointer = child("/dependencies", name);
            match PluginId::new(name) {
                Err(error) => self.key_error(&pointer, name, format!("dependency: {error}")),
                Ok(_) if Some(name.as_str()) == own_id => {
                    self.key_error(&pointer, name, format!("plugin `{name}` depends on itself"));
                }
                Ok(_) => {}
            }
            if let Some(range) = range.as_str()
                && let Err(error) = semver::VersionReq::parse(range)
            {
                self.error(
                    &pointer,
                    format!("dependency `{name}` has an invalid semver range `{range}`: {error}"),
                );
            }
        }
    }

    fn capabilities(&mut self) {
        let mut requested: HashMap<String, String> = HashMap::new();
        for list in ["request", "deny"] {
            let mut seen: HashMap<String, String> = HashMap::new();
            for (item_pointer, item) in self.items(&format!("/capabilities/{list}")) {
                let reason_pointer = child(&item_pointer, "reason");
                if let Some(reason) = item.get("reason").and_then(Value::as_str)
                    && !reason.is_empty()
                    && reason.trim().is_empty()
                {
                    self.error(
                        &reason_pointer,
                        format!("`{}` must not be blank", self.path(&reason_pointer)),
                    );
                }
                let pointer = child(&item_pointer, "capability");
                let Some(text) = item.get("capability").and_then(Value::as_str) else {
                    continue;
                };
                let canonical = match parse_capability(text) {
                    Ok(pattern) => pattern.as_str().to_owned(),
                    Err(message) => {
                        self.error(&pointer, message);
                        continue;
                    }
                };
                let verb = if list == "request" {
                    "requested"
                } else {
                    "denied"
                };
                if seen.insert(canonical.clone(), pointer.clone()).is_some() {
                    self.error(&pointer, format!("capability `{text}` is {verb} twice"));
                    continue;
                }
                if list == "request" {
                    requested.insert(canonical, pointer);
                } else if requested.contains_key(&canonical) {
                    self.error(
                        &pointer,
                        format!(
                            "capability `{text}` is both requested and denied; remove one of them"
                        ),
                    );
                }
            }
        }
    }

    fn execution(&mut self) {
        let Some(execution) = self.object_at("/execution") else {
            return;
        };
        let tier = execution.get("tier").and_then(Value::as_str);
        match execution.get("entry").and_then(Value::as_str) {
            Some(entry) => {
                if let Some(problem) = entry_problem(entry) {
                    self.error(
                        "/execution/entry",
                        format!("`execution.entry` `{entry}` {problem}"),
                    );
                }
            }
            None if !execution.contains_key("entry") => {
                if let Some(tier) = tier.filter(|tier| *tier != "builtin") {
                    self.missing(
                        "/execution",
                        format!("missing `execution.entry`: the {tier} tier needs an entry to run"),
                    );
                }
            }
            None => {}
        }
        if let Some(interpreter) = execution.get("interpreter").and_then(Value::as_str) {
            let problem = if !matches!(tier, Some("process" | "container")) {
                Some("applies only to the process and container tiers")
            } else if interpreter.trim().is_empty() {
                Some("is empty")
            } else if !interpreter.starts_with('/') && interpreter.contains('/') {
                Some("must be an absolute path or a bare program name")
            } else if interpreter.split('/').any(|part| part == "..") {
                Some("must not contain `..`")
            } else {
                None
            };
            if let Some(problem) = problem {
                self.error(
                    "/execution/interpreter",
                    format!("`execution.interpreter` `{interpreter}` {problem}"),
                );
            }
        }
        if execution.get("protocol").and_then(Value::as_str) == Some("mcp")
            && tier != Some("process")
        {
            self.error(
                "/execution/protocol",
                "`execution.protocol = \"mcp\"` applies only to the process tier".to_owned(),
            );
        }
        if tier.is_some_and(|tier| tier != "wasm")
            && self.root.pointer("/execution/limits/fuel").is_some()
        {
            self.error(
                "/execution/limits/fuel",
                "`execution.limits.fuel` applies only to the wasm tier".to_owned(),
            );
        }
        let mut mounts = HashMap::new();
        for (item_pointer, mount) in self.items("/execution/sandbox/fs") {
            let pointer = child(&item_pointer, "path");
            let Some(path) = mount.get("path").and_then(Value::as_str) else {
                continue;
            };
            if let Some(problem) = mount_problem(path) {
                self.error(&pointer, format!("sandbox path `{path}` {problem}"));
            } else if mounts.insert(path, ()).is_some() {
                self.error(&pointer, format!("sandbox path `{path}` is listed twice"));
            }
        }
        let mut destinations = HashMap::new();
        for (pointer, egress) in self.items("/execution/sandbox/egress") {
            let Some(text) = egress.as_str() else {
                continue;
            };
            match parse_egress(text) {
                Err(problem) => self.error(&pointer, format!("egress `{text}` {problem}")),
                Ok(parsed) => {
                    if destinations.insert(parsed, ()).is_some() {
                        self.error(&pointer, format!("egress `{text}` is listed twice"));
                    }
                }
            }
        }
        if let Some(env) = self.object_at("/execution/env") {
            for name in env.keys() {
                if !is_env_name(name) {
                    self.key_error(
                        &child("/execution/env", name),
                        name,
                        format!(
                            "environment variable name `{name}` is invalid: use letters, digits \
                             and `_`, not starting with a digit"
                        ),
                    );
                }
            }
        }
    }

    fn config(&mut self) {
        let Some(schema) = self.object_at("/config/schema") else {
            return;
        };
        match schema.get("type") {
            Some(Value::String(t)) if t == "object" => {}
            Some(_) => self.error(
                "/config/schema/type",
                "`config.schema` must describe a table: its `type` must be `object`".to_owned(),
            ),
            None => self.missing(
                "/config/schema",
                "`config.schema` must describe a table: add `type = \"object\"`".to_owned(),
            ),
        }
        let as_value = Value::Object(schema.clone());
        if let Err(error) = jsonschema::meta::validate(&as_value) {
            let pointer = format!("/config/schema{}", error.instance_path().as_str());
            self.error(
                &pointer,
                format!("`config.schema` is not a valid json schema: {error}"),
            );
        } else if let Err(error) = jsonschema::validator_for(&as_value) {
            self.error(
                "/config/schema",
                format!("`config.schema` cannot be compiled: {error}"),
            );
        }
        self.secret_flags("/config/schema", schema);
    }

    fn secret_flags(&mut self, pointer: &str, schema: &Map<String, Value>) {
        let Some(Value::Object(properties)) = schema.get("properties") else {
            return;
        };
        let properties_pointer = child(pointer, "properties");
        for (name, property) in properties {
            let Value::Object(property) = property else {
                continue;
            };
            let property_pointer = child(&properties_pointer, name);
            if let Some(flag) = property.get("secret")
                && !flag.is_boolean()
            {
                self.error(
                    &child(&property_pointer, "secret"),
                    format!("`secret` of config property `{name}` must be true or false"),
                );
            }
            self.secret_flags(&property_pointer, property);
        }
    }

    fn actions(&mut self) {
        let Some(actions) = self.object_at("/actions") else {
            return;
        };
        for name in actions.keys() {
            if !is_action_name(name) {
                self.key_error(
                    &child("/actions", name),
                    name,
                    format!(
                        "action name `{name}` is invalid: use letters, digits, `_`, `-` and `.`"
                    ),
                );
            }
        }
    }

    fn hooks(&mut self) {
        let mut seen = BTreeMap::new();
        for (item_pointer, hook) in self.items("/hooks") {
            let Some(event) = hook.get("event").and_then(Value::as_str) else {
                continue;
            };
            if seen.insert(event, ()).is_some() {
                self.error(
                    &child(&item_pointer, "event"),
                    format!("hook event `{event}` is subscribed twice"),
                );
            }
        }
    }

    fn commands(&mut self) {
        let mut seen = BTreeMap::new();
        for (item_pointer, command) in self.items("/commands") {
            let name = command.get("name").and_then(Value::as_str);
            if let Some(name) = name {
                let pointer = child(&item_pointer, "name");
                if !is_command_name(name) {
                    self.error(
                        &pointer,
                        format!(
                            "command name `{name}` is invalid: use lowercase letters, digits and \
                             `-`, starting with a letter"
                        ),
                    );
                } else if self.reserved.contains(&name) {
                    self.error(
                        &pointer,
                        format!("command name `{name}` is reserved by sigil"),
                    );
                } else if seen.insert(name, ()).is_some() {
                    self.error(&pointer, format!("command `{name}` is declared twice"));
                }
            }
            let label = name.map_or_else(String::new, |name| format!(" `{name}`"));
            let capability = command.get("capability");
            match capability.and_then(Value::as_str) {
                Some(text) => {
                    if let Err(message) = parse_capability(text) {
                        self.error(&child(&item_pointer, "capability"), message);
                    }
                }
                None if capability.is_none()
                    && command.get("require_auth") == Some(&Value::Bool(true)) =>
                {
                    self.error(
                        &child(&item_pointer, "require_auth"),
                        format!(
                            "command{label} sets `require_auth` but names no `capability` to \
                             require"
                        ),
                    );
                }
                None => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries() {
        let cases = [
            ("plugin.wasm", None),
            ("bin/weather", None),
            ("", Some("must not be empty")),
            (
                "/usr/bin/x",
                Some("must be a relative path inside the plugin directory"),
            ),
            (
                "C:\\x.exe",
                Some("must be a relative path inside the plugin directory"),
            ),
            ("../x", Some("must not contain `..`")),
            ("a/../../x", Some("must not contain `..`")),
            ("a\\..\\x", Some("must not contain `..`")),
            ("a..b/x", None),
        ];
        for (entry, expected) in cases {
            assert_eq!(entry_problem(entry), expected, "{entry}");
        }
    }

    #[test]
    fn egress() {
        let ok = [
            ("api.github.com:443", ("api.github.com", Some(443))),
            ("API.GitHub.com:443", ("api.github.com", Some(443))),
            ("*.example.com:*", ("*.example.com", None)),
            ("10.0.0.1:8080", ("10.0.0.1", Some(8080))),
            ("[::1]:53", ("[::1]", Some(53))),
        ];
        for (text, (host, port)) in ok {
            assert_eq!(parse_egress(text), Ok((host.to_owned(), port)), "{text}");
        }
        for bad in [
            "example.com",
            "example.com:0",
            "example.com:70000",
            ":443",
            "a.*.com:443",
            "a..com:1",
            "[::1]",
            "[zz]:1",
            "exa mple.com:1",
        ] {
            assert!(parse_egress(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn secrets_are_found_nested() {
        let schema = serde_json::json!({
            "type": "object",
            "properties": {
                "token": {"type": "string", "secret": true},
                "city": {"type": "string"},
                "db": {"type": "object", "properties": {"password": {"secret": true}}},
            }
        });
        let Value::Object(schema) = schema else {
            unreachable!()
        };
        assert_eq!(secret_fields(&schema), vec!["db.password", "token"]);
    }

    #[test]
    fn names() {
        assert!(is_command_name("weather-now"));
        assert!(!is_command_name("Weather"));
        assert!(!is_command_name("1st"));
        assert!(is_env_name("API_URL"));
        assert!(!is_env_name("1X"));
        assert!(!is_env_name("A-B"));
        assert!(is_action_name("restart"));
        assert!(is_action_name("container.restart"));
        assert!(!is_action_name("re start"));
    }
}
