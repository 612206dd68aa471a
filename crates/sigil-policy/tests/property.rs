//! The compiled matcher agrees with the direct, pattern-by-pattern matcher on random input.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proptest::prelude::*;
use sigil_policy::{Capability, CapabilitySet, Pattern};

const WORDS: &[&str] = &[
    "fs", "net", "kv", "tool", "read", "write", "a", "b", "ab", "data", "x.y",
];

fn action_segment() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(&WORDS[..10]).prop_map(str::to_string),
        1 => Just("*".to_string()),
        1 => prop::sample::select(vec!["a*", "*b", "a*b", "*ea*"]).prop_map(str::to_string),
    ]
}

fn path_component() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(WORDS).prop_map(str::to_string),
        1 => Just("*".to_string()),
        1 => Just("**".to_string()),
        1 => prop::sample::select(vec!["a*", "*.y", "x*y"]).prop_map(str::to_string),
    ]
}

fn concrete_component() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => prop::sample::select(WORDS).prop_map(str::to_string),
        1 => Just("..".to_string()),
        1 => Just(".".to_string()),
        1 => Just("x*y".to_string()),
    ]
}

fn pattern() -> impl Strategy<Value = String> {
    let ns = prop::sample::select(vec!["fs", "net", "kv", "tool"]);
    (
        ns,
        prop::collection::vec(action_segment(), 0..3),
        prop::option::of(prop::collection::vec(path_component(), 0..4)),
        prop::option::of(prop::sample::select(vec!["80", "443", "*"])),
    )
        .prop_map(|(ns, rest, resource, port)| {
            let mut text = std::iter::once(ns.to_string())
                .chain(rest)
                .collect::<Vec<_>>()
                .join(".");
            if let Some(parts) = resource {
                let parts: Vec<String> = parts
                    .into_iter()
                    .filter(|p| ns != "net" || p != "**")
                    .collect();
                if text.split('.').count() < 2 {
                    text.push_str(".x");
                }
                match ns {
                    "fs" => text = format!("{text}:/{}", parts.join("/")),
                    "net" if !parts.is_empty() => {
                        let host = parts
                            .iter()
                            .map(|p| p.replace('.', "-"))
                            .collect::<Vec<_>>()
                            .join(".");
                        text = format!("{text}:{host}");
                        if let Some(port) = port {
                            text = format!("{text}:{port}");
                        }
                    }
                    "net" => {}
                    _ => text = format!("{text}:{}", parts.concat().replace("**", "*")),
                }
                if text.ends_with(':') {
                    text.pop();
                }
            }
            text
        })
}

fn capability() -> impl Strategy<Value = String> {
    let ns = prop::sample::select(vec!["fs", "net", "kv", "tool"]);
    (
        ns,
        prop::collection::vec(prop::sample::select(&WORDS[..10]), 1..4),
        prop::option::of(prop::collection::vec(concrete_component(), 0..5)),
        prop::option::of(prop::sample::select(vec!["80", "443", "8080"])),
    )
        .prop_map(|(ns, rest, resource, port)| {
            let mut text = std::iter::once(ns)
                .chain(rest)
                .collect::<Vec<_>>()
                .join(".");
            if let Some(parts) = resource {
                match ns {
                    "fs" => text = format!("{text}:/{}", parts.join("/")),
                    "net" => {
                        let labels: Vec<String> = parts
                            .iter()
                            .filter(|p| !p.contains(['*', '.']))
                            .cloned()
                            .collect();
                        if !labels.is_empty() {
                            text = format!("{text}:{}", labels.join("."));
                            if let Some(port) = port {
                                text = format!("{text}:{port}");
                            }
                        }
                    }
                    _ if !parts.is_empty() => text = format!("{text}:{}", parts.concat()),
                    _ => {}
                }
            }
            text
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn compiled_set_agrees_with_the_reference(patterns in prop::collection::vec(pattern(), 0..24), capabilities in prop::collection::vec(capability(), 1..16)) {
        let patterns: Vec<Pattern> = patterns.iter().filter_map(|p| Pattern::parse(p).ok()).collect();
        let set = CapabilitySet::new(patterns.clone());
        for text in &capabilities {
            let Ok(c) = Capability::parse(text) else { continue };
            let reference = patterns.iter().any(|p| p.matches(&c));
            prop_assert_eq!(set.contains(&c), reference, "capability {} against {:?}", c, patterns.iter().map(|p| p.to_string()).collect::<Vec<_>>());
            if let Some(named) = set.find(&c) {
                prop_assert!(named.matches(&c), "set named {} for {}", named, c);
            }
        }
    }

    #[test]
    fn canonical_text_round_trips(text in pattern()) {
        if let Ok(p) = Pattern::parse(&text) {
            let again = Pattern::parse(p.as_str());
            prop_assert_eq!(again.as_ref().map(|q| q.as_str()), Ok(p.as_str()));
        }
    }
}

#[test]
fn the_generators_produce_parseable_input() {
    // Guards against a property test that silently skips everything.
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let (mut patterns, mut capabilities) = (0, 0);
    for _ in 0..500 {
        let p = pattern().new_tree(&mut runner).unwrap().current();
        let c = capability().new_tree(&mut runner).unwrap().current();
        patterns += usize::from(Pattern::parse(&p).is_ok());
        capabilities += usize::from(Capability::parse(&c).is_ok());
    }
    assert!(
        patterns > 400,
        "only {patterns}/500 generated patterns parse"
    );
    assert!(
        capabilities > 400,
        "only {capabilities}/500 generated capabilities parse"
    );
}
