//! Compiled capability sets.
//!
//! A [`CapabilitySet`] compiles its patterns once into a trie over action segments, then
//! resource components, then the port. A check walks only the branches that can match, so its
//! cost grows with the length of the capability and the number of wildcards along its path, not
//! with the number of patterns in the set. Nothing is parsed during a check.

use rustc_hash::FxHashMap;

use crate::capability::{Capability, Glob, PortPattern, Resource, ResourcePattern, Seg};
use crate::{CapabilityError, Pattern};

/// A set of capability patterns, compiled for matching.
///
/// An empty set matches nothing.
#[derive(Debug, Clone)]
pub struct CapabilitySet {
    patterns: Vec<Pattern>,
    nodes: Vec<Node>,
}

#[derive(Debug, Clone, Default)]
struct Node {
    lits: FxHashMap<Box<str>, u32>,
    globs: Vec<(Glob, u32)>,
    /// `*`: one or more whole segments of the current part (action or host).
    many: Option<u32>,
    /// `**`: zero or more path components.
    deep: Option<u32>,
    /// A pattern without a resource ends here: it matches any resource, or none.
    any_resource: Option<u32>,
    /// Moves from the action to the resource.
    resource: Option<u32>,
    /// A pattern whose resource ends here (for hosts: with any port).
    end: Option<u32>,
    /// Host patterns with an exact port that end here.
    ports: FxHashMap<u16, u32>,
}

impl Default for CapabilitySet {
    /// The empty set, which matches nothing. It has its root node like any other set, so
    /// every lookup in it is defined.
    fn default() -> Self {
        CapabilitySet::new([])
    }
}

impl CapabilitySet {
    /// Compiles patterns into a set. Duplicates are kept once (the first wins as the named rule).
    pub fn new(patterns: impl IntoIterator<Item = Pattern>) -> CapabilitySet {
        let mut set = CapabilitySet {
            patterns: Vec::new(),
            nodes: vec![Node::default()],
        };
        for pattern in patterns {
            set.insert(pattern);
        }
        set
    }

    /// Parses and compiles pattern texts.
    ///
    /// # Errors
    /// The first pattern that does not parse.
    pub fn parse<S: AsRef<str>>(
        patterns: impl IntoIterator<Item = S>,
    ) -> Result<CapabilitySet, CapabilityError> {
        let patterns = patterns
            .into_iter()
            .map(|p| Pattern::parse(p.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(CapabilitySet::new(patterns))
    }

    /// The patterns, in the order they were added.
    pub fn patterns(&self) -> &[Pattern] {
        &self.patterns
    }

    /// Whether the set has no patterns (and so matches nothing).
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// The number of patterns.
    pub fn len(&self) -> usize {
        self.patterns.len()
    }

    /// Whether any pattern covers `capability`.
    pub fn contains(&self, capability: &Capability) -> bool {
        self.find(capability).is_some()
    }

    /// A pattern that covers `capability`, if any: the rule to name when explaining a decision.
    /// Literal branches are tried before wildcard ones, so the most specific pattern tends to be named.
    pub fn find(&self, capability: &Capability) -> Option<&Pattern> {
        self.walk_action(0, &capability.action, capability)
            .and_then(|index| self.patterns.get(index as usize))
    }

    /// A pattern that covers `capability` and names its host without a wildcard
    /// ([`Pattern::names_host`]), if any. A linear scan: it is asked only for destinations
    /// that need such a grant.
    pub fn find_naming(&self, capability: &Capability) -> Option<&Pattern> {
        self.patterns
            .iter()
            .find(|pattern| pattern.names_host() && pattern.matches(capability))
    }

    fn insert(&mut self, pattern: Pattern) {
        let index = self.patterns.len() as u32;
        let mut node = 0;
        for seg in &pattern.parts().action {
            node = self.child(node, seg);
        }
        match &pattern.parts().resource {
            None => {
                self.nodes[node as usize].any_resource.get_or_insert(index);
            }
            Some(resource) => {
                node = match self.nodes[node as usize].resource {
                    Some(next) => next,
                    None => {
                        let next = self.push();
                        self.nodes[node as usize].resource = Some(next);
                        next
                    }
                };
                let (segs, port) = match resource {
                    ResourcePattern::Path(segs) => (segs.as_slice(), PortPattern::Any),
                    ResourcePattern::Name(seg) => (std::slice::from_ref(seg), PortPattern::Any),
                    ResourcePattern::Host { labels, port } => (labels.as_slice(), *port),
                };
                for seg in segs {
                    node = self.child(node, seg);
                }
                let node = &mut self.nodes[node as usize];
                match port {
                    PortPattern::Any => {
                        node.end.get_or_insert(index);
                    }
                    PortPattern::Exact(port) => {
                        node.ports.entry(port).or_insert(index);
                    }
                }
            }
        }
        self.patterns.push(pattern);
    }

    fn push(&mut self) -> u32 {
        self.nodes.push(Node::default());
        (self.nodes.len() - 1) as u32
    }

    fn child(&mut self, node: u32, seg: &Seg) -> u32 {
        let existing = {
            let n = &self.nodes[node as usize];
            match seg {
                Seg::Lit(lit) => n.lits.get(lit).copied(),
                Seg::Glob(glob) => n.globs.iter().find(|(g, _)| g == glob).map(|(_, c)| *c),
                Seg::Many => n.many,
                Seg::Deep => n.deep,
            }
        };
        if let Some(child) = existing {
            return child;
        }
        let child = self.push();
        let n = &mut self.nodes[node as usize];
        match seg {
            Seg::Lit(lit) => {
                n.lits.insert(lit.clone(), child);
            }
            Seg::Glob(glob) => n.globs.push((glob.clone(), child)),
            Seg::Many => n.many = Some(child),
            Seg::Deep => n.deep = Some(child),
        }
        child
    }

    fn walk_action(&self, node: u32, rest: &[Box<str>], capability: &Capability) -> Option<u32> {
        let n = &self.nodes[node as usize];
        let Some((first, tail)) = rest.split_first() else {
            if let Some(found) = n.any_resource {
                return Some(found);
            }
            let (next, resource) = (n.resource?, capability.resource.as_ref()?);
            return match resource {
                Resource::Path(components) => self.walk_resource(next, components, None),
                Resource::Name(name) => self.walk_resource(next, std::slice::from_ref(name), None),
                Resource::Host { labels, port } => self.walk_resource(next, labels, Some(*port)),
            };
        };
        if let Some(&child) = n.lits.get(&**first)
            && let Some(found) = self.walk_action(child, tail, capability)
        {
            return Some(found);
        }
        for (glob, child) in &n.globs {
            if glob.matches(first)
                && let Some(found) = self.walk_action(*child, tail, capability)
            {
                return Some(found);
            }
        }
        if let Some(child) = n.many {
            for taken in 1..=rest.len() {
                if let Some(found) = self.walk_action(child, &rest[taken..], capability) {
                    return Some(found);
                }
            }
        }
        None
    }

    /// `port` is `None` for paths and names, `Some(port)` for hosts.
    fn walk_resource(
        &self,
        node: u32,
        rest: &[Box<str>],
        port: Option<Option<u16>>,
    ) -> Option<u32> {
        let n = &self.nodes[node as usize];
        if rest.is_empty() {
            if let Some(found) = n.end {
                return Some(found);
            }
            if let Some(Some(port)) = port
                && let Some(&found) = n.ports.get(&port)
            {
                return Some(found);
            }
        }
        if let Some((first, tail)) = rest.split_first() {
            if let Some(&child) = n.lits.get(&**first)
                && let Some(found) = self.walk_resource(child, tail, port)
            {
                return Some(found);
            }
            for (glob, child) in &n.globs {
                if glob.matches(first)
                    && let Some(found) = self.walk_resource(*child, tail, port)
                {
                    return Some(found);
                }
            }
            if let Some(child) = n.many {
                for taken in 1..=rest.len() {
                    if let Some(found) = self.walk_resource(child, &rest[taken..], port) {
                        return Some(found);
                    }
                }
            }
        }
        if let Some(child) = n.deep {
            for taken in 0..=rest.len() {
                if let Some(found) = self.walk_resource(child, &rest[taken..], port) {
                    return Some(found);
                }
            }
        }
        None
    }
}

impl FromIterator<Pattern> for CapabilitySet {
    fn from_iter<I: IntoIterator<Item = Pattern>>(iter: I) -> Self {
        CapabilitySet::new(iter)
    }
}
