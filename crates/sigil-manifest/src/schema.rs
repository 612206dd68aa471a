//! The manifest's JSON Schema: generated from the raw structs, exported for editors, and used,
//! compiled once, as the first validation pass.

use std::sync::LazyLock;

use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::types::JsonType;
use jsonschema::{ValidationError, Validator};
use serde_json::Value;

use crate::diagnostic::{Diagnostic, render_value};
use crate::pointer::{child, display_path};
use crate::raw::RawManifest;
use crate::spans::{Pos, SpanIndex};

/// The JSON Schema (draft 2020-12) of a manifest, as used to validate it.
///
/// Every table has `additionalProperties: false`. Optional fields may be left out but are never
/// `null`. Feed it to an editor for completion and inline errors on `plugin.toml` (e.g. with
/// taplo) or `plugin.yaml`.
pub fn json_schema() -> Value {
    SCHEMA.clone()
}

static SCHEMA: LazyLock<Value> = LazyLock::new(|| {
    let mut schema = schemars::schema_for!(RawManifest).to_value();
    forbid_null(&mut schema);
    schema
});

/// The compiled schema. Compiling cannot fail for the schema this crate generates (a test keeps
/// it so); the error is kept rather than unwrapped so a regression reports instead of panicking.
static VALIDATOR: LazyLock<Result<Validator, String>> =
    LazyLock::new(|| jsonschema::validator_for(&SCHEMA).map_err(|e| e.to_string()));

/// Generated schemas let optional fields be `null`, because serde reads `null` as `None`.
/// A manifest has no use for writing `null` (TOML cannot even say it), so the schema given to
/// editors and to the validator says only what is meant: leave the field out.
fn forbid_null(schema: &mut Value) {
    let Value::Object(map) = schema else {
        return;
    };
    if let Some(Value::Array(types)) = map.get_mut("type") {
        types.retain(|t| t != "null");
        if types.len() == 1 {
            let only = types.remove(0);
            map.insert("type".into(), only);
        }
    }
    if let Some(Value::Array(alternatives)) = map.get_mut("anyOf") {
        alternatives.retain(|a| a.get("type").and_then(Value::as_str) != Some("null"));
        if alternatives.len() == 1 {
            let only = alternatives.remove(0);
            map.remove("anyOf");
            if let Value::Object(only) = only {
                for (key, value) in only {
                    map.entry(key).or_insert(value);
                }
            }
        }
    }
    if let Some(Value::Array(options)) = map.get_mut("enum") {
        options.retain(|o| !o.is_null());
    }
    if map.get("default").is_some_and(Value::is_null) {
        map.remove("default");
    }
    for keyword in ["properties", "$defs"] {
        if let Some(Value::Object(members)) = map.get_mut(keyword) {
            members.values_mut().for_each(forbid_null);
        }
    }
    for keyword in ["additionalProperties", "items"] {
        if let Some(sub) = map.get_mut(keyword) {
            forbid_null(sub);
        }
    }
    for keyword in ["anyOf", "oneOf", "allOf"] {
        if let Some(Value::Array(subs)) = map.get_mut(keyword) {
            subs.iter_mut().for_each(forbid_null);
        }
    }
}

/// Checks `manifest` against the schema and describes every failure, located.
pub(crate) fn check(manifest: &Value, index: &SpanIndex, file: &str) -> Vec<Diagnostic> {
    let validator = match &*VALIDATOR {
        Ok(validator) => validator,
        Err(error) => {
            return vec![Diagnostic {
                file: file.to_owned(),
                line: 1,
                column: 1,
                pointer: String::new(),
                message: format!("internal error: the manifest schema does not compile: {error}"),
                value: None,
            }];
        }
    };
    let mut out = Vec::new();
    for error in validator.iter_errors(manifest) {
        describe(&error, manifest, &SCHEMA, index, file, &mut out);
    }
    out
}

fn describe(
    error: &ValidationError<'_>,
    manifest: &Value,
    schema: &Value,
    index: &SpanIndex,
    file: &str,
    out: &mut Vec<Diagnostic>,
) {
    let pointer = error.instance_path().as_str();
    let path = display_path(manifest, pointer);
    let within = if pointer.is_empty() {
        String::new()
    } else {
        format!(" in `{path}`")
    };
    let value = Some(render_value(error.instance()));
    let at = |pos: Pos, pointer: &str, message: String, value: Option<String>| Diagnostic {
        file: file.to_owned(),
        line: pos.line,
        column: pos.column,
        pointer: pointer.to_owned(),
        message,
        value,
    };
    let subject = if pointer.is_empty() {
        "the manifest".to_owned()
    } else {
        format!("`{path}`")
    };
    let message = match error.kind() {
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            let known = known_fields(schema, manifest, pointer);
            for name in unexpected {
                let member = child(pointer, name);
                let mut message = format!("unknown field `{name}`{within}");
                if let Some(hint) = unknown_field_hint(name, &known) {
                    message.push_str("; ");
                    message.push_str(&hint);
                }
                out.push(at(
                    index.key(&member),
                    &member,
                    message,
                    Some(name.to_string()),
                ));
            }
            return;
        }
        ValidationErrorKind::Required { property } => {
            let name = property
                .as_str()
                .map_or_else(|| property.to_string(), str::to_owned);
            let message = format!("missing required field `{name}`{within}");
            out.push(at(index.key(pointer), pointer, message, None));
            return;
        }
        ValidationErrorKind::Type { kind } => {
            let found = error.instance();
            let quote = matches!(kind, TypeKind::Single(JsonType::String))
                && (found.is_number() || found.is_boolean());
            format!(
                "{subject} must be {}, found {}{}",
                expected_types(kind),
                type_name(found),
                if quote { "; put it in quotes" } else { "" }
            )
        }
        ValidationErrorKind::Enum { options } => {
            let options = options
                .as_array()
                .map(|options| {
                    options
                        .iter()
                        .map(|o| format!("`{}`", render_value(o)))
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default();
            format!("{subject} must be one of {options}")
        }
        ValidationErrorKind::Minimum { limit } => format!("{subject} must be at least {limit}"),
        ValidationErrorKind::Maximum { limit } => format!("{subject} must be at most {limit}"),
        ValidationErrorKind::MinLength { limit: 1 } => format!("{subject} must not be empty"),
        ValidationErrorKind::MinLength { limit } => {
            format!("{subject} must be at least {limit} characters long")
        }
        ValidationErrorKind::MaxLength { limit } => {
            format!("{subject} must be at most {limit} characters long")
        }
        ValidationErrorKind::MinItems { limit: 1 } => {
            format!("{subject} must list at least one entry")
        }
        ValidationErrorKind::MinItems { limit } => {
            format!("{subject} must list at least {limit} entries")
        }
        ValidationErrorKind::Pattern { pattern } => {
            format!("{subject} must match the pattern `{pattern}`")
        }
        _ => format!(
            "{subject} is invalid: {}",
            lowercase_first(&error.to_string())
        ),
    };
    out.push(at(index.value(pointer), pointer, message, value));
}

/// What to tell an author who wrote an unknown field.
fn unknown_field_hint(name: &str, known: &[String]) -> Option<String> {
    let lowered = name.to_ascii_lowercase();
    if lowered.contains("trust") {
        return Some(
            "a manifest cannot declare its own trust: trust comes from a verified signature by a \
             key the operator trusts, or from being compiled in"
                .to_owned(),
        );
    }
    let close = |candidate: &String| {
        let (shorter, longer) = if candidate.len() < lowered.len() {
            (candidate.as_str(), lowered.as_str())
        } else {
            (lowered.as_str(), candidate.as_str())
        };
        // `entrypoint` for `entry`, `memory` for `memory_mib`.
        let prefix = shorter.len() >= 4 && longer.starts_with(shorter);
        let distance = edit_distance(&lowered, candidate);
        (prefix || distance <= 2.max(candidate.len() / 4)).then_some(distance)
    };
    let best = known
        .iter()
        .filter_map(|candidate| close(candidate).map(|distance| (distance, candidate)))
        .min_by_key(|(distance, _)| *distance)?;
    Some(format!("did you mean `{}`?", best.1))
}

/// The property names the schema allows for the table at `pointer`.
fn known_fields(schema: &Value, manifest: &Value, pointer: &str) -> Vec<String> {
    let mut node = resolve(schema, schema);
    let mut instance = manifest;
    for token in pointer.split('/').skip(1) {
        let token = token.replace("~1", "/").replace("~0", "~");
        let next = if instance.is_array() {
            node.get("items")
        } else {
            node.get("properties")
                .and_then(|p| p.get(&token))
                .or_else(|| node.get("additionalProperties"))
        };
        let Some(next) = next else {
            return Vec::new();
        };
        node = resolve(schema, next);
        instance = match instance {
            Value::Array(items) => match token.parse::<usize>().ok().and_then(|i| items.get(i)) {
                Some(item) => item,
                None => return Vec::new(),
            },
            other => match other.get(&token) {
                Some(member) => member,
                None => return Vec::new(),
            },
        };
    }
    node.get("properties")
        .and_then(Value::as_object)
        .map(|properties| properties.keys().cloned().collect())
        .unwrap_or_default()
}

/// Follows a local `$ref` (`#/$defs/Name`), once.
fn resolve<'a>(root: &'a Value, node: &'a Value) -> &'a Value {
    node.get("$ref")
        .and_then(Value::as_str)
        .and_then(|reference| reference.strip_prefix('#'))
        .and_then(|pointer| root.pointer(pointer))
        .unwrap_or(node)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitute = previous[j] + usize::from(ca != *cb);
            let insert = current[j] + 1;
            let delete = previous[j + 1] + 1;
            current.push(substitute.min(insert).min(delete));
        }
        previous = current;
    }
    previous[b.len()]
}

fn expected_types(kind: &TypeKind) -> String {
    match kind {
        TypeKind::Single(t) => json_type_name(*t).to_owned(),
        TypeKind::Multiple(set) => set
            .iter()
            .map(json_type_name)
            .collect::<Vec<_>>()
            .join(" or "),
    }
}

fn json_type_name(t: JsonType) -> &'static str {
    match t {
        JsonType::Null => "null",
        JsonType::Boolean => "a boolean",
        JsonType::Integer => "an integer",
        JsonType::Number => "a number",
        JsonType::String => "a string",
        JsonType::Array => "a list",
        JsonType::Object => "a table",
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "an integer",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a table",
    }
}

fn lowercase_first(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Whether `schema` has `additionalProperties: false` on every object schema with `properties`.
#[cfg(test)]
pub(crate) fn closes_every_table(schema: &Value) -> bool {
    fn walk(node: &Value) -> bool {
        match node {
            Value::Object(map) => {
                let closed = !map.contains_key("properties")
                    || map.get("additionalProperties") == Some(&Value::Bool(false));
                closed && map.values().all(walk)
            }
            Value::Array(items) => items.iter().all(walk),
            _ => true,
        }
    }
    walk(schema)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiles() {
        assert!(VALIDATOR.is_ok(), "{:?}", VALIDATOR.as_ref().err());
    }

    #[test]
    fn schema_forbids_null_and_unknown_fields() {
        let schema = json_schema();
        let text = schema.to_string();
        assert!(!text.contains("\"null\""), "{text}");
        assert!(closes_every_table(&schema));
        assert_eq!(
            schema["$schema"],
            "https://json-schema.org/draft/2020-12/schema"
        );
    }

    #[test]
    fn near_misses_are_suggested() {
        let known = vec!["version".to_owned(), "engine".to_owned()];
        let cases = [
            ("verison", Some("did you mean `version`?")),
            ("engnie", Some("did you mean `engine`?")),
            ("colour", None),
            ("engine_version", Some("did you mean `engine`?")),
        ];
        for (name, expected) in cases {
            assert_eq!(
                unknown_field_hint(name, &known).as_deref(),
                expected,
                "{name}"
            );
        }
        assert!(
            unknown_field_hint("trust_level", &known)
                .is_some_and(|hint| hint.contains("verified signature"))
        );
    }
}
