//! The compiled matcher against the direct one: for any set of patterns and any capability,
//! `CapabilitySet` covers the capability exactly when some pattern's own `matches` does, and
//! the pattern it names as the deciding rule does cover it. Patterns and capabilities are
//! built from a small alphabet so that they overlap often.
#![no_main]

use arbitrary::Arbitrary;
use sigil_policy::{Capability, CapabilitySet, Pattern};

/// A namespace: it decides how the resource is read.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Namespace {
    Fs,
    Net,
    Tool,
    Secret,
    /// A wildcard namespace (patterns only; such a pattern cannot have a resource).
    Star,
}

/// One action segment, one path component, one host label or one name.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Word {
    A,
    B,
    Ab,
    Dot,
    /// `*`
    Star,
    /// `a*`
    AStar,
    /// `*b`
    StarB,
    /// `a*b`
    AStarB,
    /// `**`
    Deep,
    /// `..` (paths)
    Up,
}

impl Word {
    fn text(self) -> &'static str {
        match self {
            Word::A => "a",
            Word::B => "b",
            Word::Ab => "ab",
            Word::Dot => ".",
            Word::Star => "*",
            Word::AStar => "a*",
            Word::StarB => "*b",
            Word::AStarB => "a*b",
            Word::Deep => "**",
            Word::Up => "..",
        }
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Port {
    None,
    Any,
    One,
    Two,
}

#[derive(Arbitrary, Debug)]
struct Spec {
    namespace: Namespace,
    action: Vec<Word>,
    resource: Option<(Vec<Word>, Port)>,
}

impl Spec {
    fn text(&self) -> String {
        let namespace = match self.namespace {
            Namespace::Fs => "fs",
            Namespace::Net => "net",
            Namespace::Tool => "tool",
            Namespace::Secret => "secret",
            Namespace::Star => "*",
        };
        let mut out = namespace.to_string();
        for word in self.action.iter().take(4) {
            out.push('.');
            out.push_str(word.text());
        }
        let Some((words, port)) = &self.resource else {
            return out;
        };
        out.push(':');
        let words: Vec<&str> = words.iter().take(5).map(|w| w.text()).collect();
        match self.namespace {
            Namespace::Fs => {
                out.push('/');
                out.push_str(&words.join("/"));
            }
            Namespace::Net => {
                out.push_str(&words.join("."));
                match port {
                    Port::None => {}
                    Port::Any => out.push_str(":*"),
                    Port::One => out.push_str(":1"),
                    Port::Two => out.push_str(":2"),
                }
            }
            _ => out.push_str(&words.concat()),
        }
        out
    }
}

#[derive(Arbitrary, Debug)]
struct Input {
    patterns: Vec<Spec>,
    capabilities: Vec<Spec>,
}

libfuzzer_sys::fuzz_target!(|input: Input| {
    let patterns: Vec<Pattern> = input
        .patterns
        .iter()
        .take(64)
        .filter_map(|spec| Pattern::parse(&spec.text()).ok())
        .collect();
    let set = CapabilitySet::new(patterns.iter().cloned());
    assert_eq!(set.patterns(), patterns.as_slice());
    for spec in input.capabilities.iter().take(16) {
        let Ok(capability) = Capability::parse(&spec.text()) else {
            continue;
        };
        let direct = patterns.iter().find(|p| p.matches(&capability));
        let compiled = set.find(&capability);
        assert_eq!(
            compiled.is_some(),
            direct.is_some(),
            "`{capability}`: compiled {compiled:?}, direct {direct:?}, set {:?}",
            patterns.iter().map(Pattern::as_str).collect::<Vec<_>>()
        );
        if let Some(rule) = compiled {
            assert!(
                rule.matches(&capability),
                "`{rule}` named for `{capability}`"
            );
        }
        assert_eq!(set.contains(&capability), direct.is_some());
        for pattern in &patterns {
            if pattern.matches(&capability) {
                assert!(
                    pattern.may_cover_within(&capability),
                    "`{pattern}` `{capability}`"
                );
            }
        }
    }
});
