//! The plugin contract is defined twice: in WIT (`wit/`, for the wasm tier) and in protobuf
//! (`proto/`, for the process and container tiers). This test parses both and fails when they
//! drift apart: every WIT function has its rpc, every parameter its request field, every record
//! field its message field (optional exactly when the WIT type is an `option`), every enum case
//! and variant case its value or oneof member. The differences that are meant are listed below,
//! each with its reason.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::path::Path;

use prost_types::{DescriptorProto, FileDescriptorSet, ServiceDescriptorProto};
use wit_parser::{Resolve, Type, TypeDefKind};

/// WIT interfaces whose functions live in a service of another name, with a prefix added to
/// each rpc: the host interfaces are one `Host` service.
const HOST_INTERFACES: &[(&str, &str, &str)] = &[
    ("log", "Host", ""),
    ("kv", "Host", "Kv"),
    ("config", "Host", "Config"),
    ("secrets", "Host", "Secret"),
];

/// Services or rpcs with no WIT counterpart, and why.
const PROTO_ONLY: &[(&str, &str)] = &[
    (
        "Lifecycle",
        "process supervision (Init, Health, Shutdown): a component has no process to supervise",
    ),
    (
        "Host.HttpSend",
        "the counterpart of wasi:http/outgoing-handler, which a component imports from WASI",
    ),
];

/// Request fields with no WIT parameter, and why.
const EXTRA_FIELDS: &[(&str, &str)] = &[
    (
        "call_id",
        "host requests name the call they belong to; in WIT the store is the call",
    ),
    (
        "call",
        "a hook's host requests name the call they belong to (HookEvent.call); in WIT the store is the call",
    ),
];

/// Functions whose one record parameter is the request message itself.
const WHOLE_MESSAGE_PARAMS: &[(&str, &str)] = &[("inbound", "deliver")];

/// WIT renames: `secrets.reference` is `SecretReference` (prefix `Secret`, rpc `Reference`).
fn rpc_name(interface: &str, function: &str) -> (String, String) {
    for (wit, service, prefix) in HOST_INTERFACES {
        if *wit == interface {
            return (service.to_string(), format!("{prefix}{}", pascal(function)));
        }
    }
    (pascal(interface), pascal(function))
}

/// WIT records and the messages that carry them.
const RECORDS: &[(&str, &str, &str)] = &[
    ("types", "blast-radius", "BlastRadius"),
    ("types", "steps", "Steps"),
    ("types", "tool-descriptor", "ToolDescriptor"),
    ("types", "call-info", "CallInfo"),
    ("channel", "features", "ChannelFeatures"),
    ("channel", "message", "ChannelMessage"),
    ("provider", "model", "Model"),
    ("provider", "usage", "Usage"),
];

/// WIT enums and the proto enums (with their value prefix) that carry them.
const ENUMS: &[(&str, &str, &str, &str)] = &[
    ("types", "scope", "Scope", "SCOPE_"),
    ("log", "level", "LogLevel", "LOG_LEVEL_"),
    ("provider", "health", "ProviderStatus.Health", "HEALTH_"),
];

/// WIT variants and how proto carries them: an enum `Kind` beside a message (`ToolError`), or
/// a oneof. Proto-only members, with reasons.
const VARIANTS: &[(&str, &str, &str)] = &[
    ("types", "tool-error", "enum ToolError.Kind KIND_"),
    ("provider", "chunk", "oneof ChatChunk.chunk"),
    ("hook", "verdict", "oneof HookVerdict.verdict"),
];
const VARIANT_EXTRAS: &[(&str, &str)] = &[(
    "ChatChunk.error",
    "a stream cannot end in a `result` error, so an error is a last chunk",
)];

fn pascal(kebab: &str) -> String {
    kebab
        .split('-')
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect()
}

fn snake(kebab: &str) -> String {
    kebab.replace('-', "_")
}

struct Contract {
    resolve: Resolve,
    proto: FileDescriptorSet,
}

impl Contract {
    fn load() -> Contract {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let mut resolve = Resolve::default();
        resolve.push_dir(root.join("wit")).unwrap();
        let proto_root = root.join("proto");
        let files = ["types", "plugin", "host", "kinds"]
            .map(|name| proto_root.join(format!("sigil/plugin/v1/{name}.proto")));
        let proto = protox::compile(&files, [&proto_root]).unwrap();
        Contract { resolve, proto }
    }

    /// `(interface name, interface id)` of package `sigil:plugin`.
    fn interfaces(&self) -> Vec<(String, wit_parser::InterfaceId)> {
        let (_, package) = self
            .resolve
            .packages
            .iter()
            .find(|(_, p)| p.name.namespace == "sigil" && p.name.name == "plugin")
            .expect("package sigil:plugin");
        package
            .interfaces
            .iter()
            .map(|(name, id)| (name.clone(), *id))
            .collect()
    }

    fn interface(&self, name: &str) -> wit_parser::InterfaceId {
        self.interfaces()
            .into_iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no WIT interface `{name}`"))
            .1
    }

    fn wit_type(&self, interface: &str, name: &str) -> &TypeDefKind {
        let id = self.resolve.interfaces[self.interface(interface)].types[name];
        &self.resolve.types[id].kind
    }

    fn services(&self) -> impl Iterator<Item = &ServiceDescriptorProto> {
        self.proto.file.iter().flat_map(|f| f.service.iter())
    }

    fn service(&self, name: &str) -> Option<&ServiceDescriptorProto> {
        self.services().find(|s| s.name() == name)
    }

    /// A message by name, `Outer.Inner` for nested ones.
    fn message(&self, name: &str) -> &DescriptorProto {
        let mut parts = name.split('.');
        let first = parts.next().unwrap();
        let mut message = self
            .proto
            .file
            .iter()
            .flat_map(|f| f.message_type.iter())
            .find(|m| m.name() == first)
            .unwrap_or_else(|| panic!("no proto message `{name}`"));
        for part in parts {
            message = message
                .nested_type
                .iter()
                .find(|m| m.name() == part)
                .unwrap_or_else(|| panic!("no proto message `{name}`"));
        }
        message
    }

    fn enum_values(&self, name: &str) -> Vec<String> {
        let (outer, inner) = match name.rsplit_once('.') {
            Some((outer, inner)) => (Some(outer), inner),
            None => (None, name),
        };
        let enums: Vec<&prost_types::EnumDescriptorProto> = match outer {
            Some(outer) => self.message(outer).enum_type.iter().collect(),
            None => self
                .proto
                .file
                .iter()
                .flat_map(|f| f.enum_type.iter())
                .collect(),
        };
        enums
            .into_iter()
            .find(|e| e.name() == inner)
            .unwrap_or_else(|| panic!("no proto enum `{name}`"))
            .value
            .iter()
            .map(|v| v.name().to_string())
            .collect()
    }

    fn is_option(&self, ty: &Type) -> bool {
        match ty {
            Type::Id(id) => match &self.resolve.types[*id].kind {
                TypeDefKind::Option(_) => true,
                TypeDefKind::Type(inner) => self.is_option(inner),
                _ => false,
            },
            _ => false,
        }
    }

    fn record_name(&self, ty: &Type) -> Option<String> {
        match ty {
            Type::Id(id) => {
                let def = &self.resolve.types[*id];
                match &def.kind {
                    TypeDefKind::Record(_) => def.name.clone(),
                    TypeDefKind::Type(inner) => self.record_name(inner),
                    _ => None,
                }
            }
            _ => None,
        }
    }
}

#[test]
fn every_wit_function_has_its_rpc_with_its_parameters() {
    let contract = Contract::load();
    let mut problems = Vec::new();
    let mut mapped: BTreeSet<String> = BTreeSet::new();
    for (interface, id) in contract.interfaces() {
        for (name, function) in &contract.resolve.interfaces[id].functions {
            let (service_name, rpc_name) = rpc_name(&interface, name);
            let Some(service) = contract.service(&service_name) else {
                problems.push(format!("{interface}.{name}: no service `{service_name}`"));
                continue;
            };
            let Some(method) = service.method.iter().find(|m| m.name() == rpc_name) else {
                problems.push(format!(
                    "{interface}.{name}: service `{service_name}` has no rpc `{rpc_name}`"
                ));
                continue;
            };
            mapped.insert(format!("{service_name}.{rpc_name}"));
            let request_name = method.input_type().trim_start_matches(".sigil.plugin.v1.");
            let request = contract.message(request_name);
            let fields: BTreeSet<String> =
                request.field.iter().map(|f| f.name().to_string()).collect();
            let whole = WHOLE_MESSAGE_PARAMS.contains(&(interface.as_str(), name.as_str()));
            let mut expected: BTreeSet<String> = BTreeSet::new();
            for param in &function.params {
                if whole {
                    let record = contract.record_name(&param.ty).unwrap_or_default();
                    let carried = RECORDS
                        .iter()
                        .find(|(_, wit, _)| *wit == record)
                        .map(|(_, _, proto)| *proto);
                    if carried != Some(request_name) {
                        problems.push(format!(
                            "{interface}.{name}: its `{}` record is not the request message `{request_name}`",
                            param.name
                        ));
                    }
                    continue;
                }
                let field = snake(&param.name);
                if !fields.contains(&field) {
                    problems.push(format!(
                        "{interface}.{name}: parameter `{}` has no field `{field}` in `{request_name}`",
                        param.name
                    ));
                }
                expected.insert(field);
            }
            if !whole {
                for field in &fields {
                    let justified = EXTRA_FIELDS.iter().any(|(f, _)| f == field);
                    if !expected.contains(field) && !justified {
                        problems.push(format!(
                            "{interface}.{name}: `{request_name}.{field}` has no WIT parameter"
                        ));
                    }
                }
            }
        }
    }
    for service in contract.services() {
        for method in &service.method {
            let full = format!("{}.{}", service.name(), method.name());
            let justified = PROTO_ONLY
                .iter()
                .any(|(what, _)| *what == full || *what == service.name());
            if !mapped.contains(&full) && !justified {
                problems.push(format!("rpc `{full}` has no WIT function"));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "WIT and proto drifted:\n{}",
        problems.join("\n")
    );
    for rpc in [
        "Tool.Invoke",
        "Tool.Rollback",
        "Host.KvGet",
        "Host.SecretReference",
        "Hook.OnEvent",
    ] {
        assert!(mapped.contains(rpc), "{rpc} was not compared: {mapped:?}");
    }
}

#[test]
fn every_wit_record_matches_its_message_field_for_field() {
    let contract = Contract::load();
    let mut problems = Vec::new();
    for (interface, record, message_name) in RECORDS {
        let TypeDefKind::Record(wit) = contract.wit_type(interface, record) else {
            panic!("{interface}.{record} is not a record");
        };
        let message = contract.message(message_name);
        let wit_fields: BTreeSet<String> = wit.fields.iter().map(|f| snake(&f.name)).collect();
        let proto_fields: BTreeSet<String> =
            message.field.iter().map(|f| f.name().to_string()).collect();
        if wit_fields != proto_fields {
            problems.push(format!(
                "{interface}.{record} has fields {wit_fields:?}, {message_name} has {proto_fields:?}"
            ));
            continue;
        }
        for field in &wit.fields {
            let proto = message
                .field
                .iter()
                .find(|f| f.name() == snake(&field.name))
                .unwrap();
            let optional = proto.proto3_optional();
            if optional != contract.is_option(&field.ty) {
                problems.push(format!(
                    "{interface}.{record}.{}: optional in one definition only",
                    field.name
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "records drifted:\n{}",
        problems.join("\n")
    );
}

#[test]
fn every_wit_enum_and_variant_case_has_its_counterpart() {
    let contract = Contract::load();
    let mut problems = Vec::new();
    for (interface, name, proto, prefix) in ENUMS {
        let TypeDefKind::Enum(wit) = contract.wit_type(interface, name) else {
            panic!("{interface}.{name} is not an enum");
        };
        let wit_cases: BTreeSet<String> = wit
            .cases
            .iter()
            .map(|c| format!("{prefix}{}", snake(&c.name).to_uppercase()))
            .collect();
        let proto_values: BTreeSet<String> = contract
            .enum_values(proto)
            .into_iter()
            .filter(|v| !v.ends_with("_UNSPECIFIED"))
            .collect();
        if wit_cases != proto_values {
            problems.push(format!(
                "{interface}.{name} {wit_cases:?} vs {proto} {proto_values:?}"
            ));
        }
    }
    for (interface, name, carrier) in VARIANTS {
        let TypeDefKind::Variant(wit) = contract.wit_type(interface, name) else {
            panic!("{interface}.{name} is not a variant");
        };
        let mut words = carrier.split(' ');
        let (kind, target, prefix) = (
            words.next().unwrap(),
            words.next().unwrap(),
            words.next().unwrap_or(""),
        );
        let cases: BTreeSet<String> = wit.cases.iter().map(|c| snake(&c.name)).collect();
        let members: BTreeSet<String> = match kind {
            "enum" => contract
                .enum_values(target)
                .into_iter()
                .filter(|v| !v.ends_with("_UNSPECIFIED"))
                .map(|v| v.trim_start_matches(prefix).to_lowercase())
                .collect(),
            _ => {
                let (message_name, oneof) = target.rsplit_once('.').unwrap();
                let message = contract.message(message_name);
                let index = message
                    .oneof_decl
                    .iter()
                    .position(|o| o.name() == oneof)
                    .unwrap_or_else(|| panic!("no oneof {target}"));
                message
                    .field
                    .iter()
                    .filter(|f| f.oneof_index == Some(index as i32))
                    .map(|f| f.name().to_string())
                    .filter(|f| {
                        !VARIANT_EXTRAS
                            .iter()
                            .any(|(extra, _)| *extra == format!("{message_name}.{f}"))
                    })
                    .collect()
            }
        };
        if cases != members {
            problems.push(format!(
                "{interface}.{name} {cases:?} vs {target} {members:?}"
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "cases drifted:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_listed_exceptions_are_still_needed() {
    // An exception that no longer applies hides nothing but should go.
    let contract = Contract::load();
    for (what, reason) in PROTO_ONLY {
        let service = what.split('.').next().unwrap();
        assert!(
            contract.service(service).is_some(),
            "exception `{what}` ({reason}) names nothing"
        );
    }
    for (what, reason) in VARIANT_EXTRAS {
        let (message, field) = what.split_once('.').unwrap();
        assert!(
            contract
                .message(message)
                .field
                .iter()
                .any(|f| f.name() == field),
            "exception `{what}` ({reason}) names nothing"
        );
    }
    let _ = EXTRA_FIELDS;
}
