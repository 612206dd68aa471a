//! Table-driven tests of the capability grammar and matcher.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sigil_policy::{Capability, CapabilitySet, Pattern};

/// (pattern, capability, expected). Each row runs through both the direct matcher and a
/// compiled set holding that single pattern.
const MATCHES: &[(&str, &str, bool)] = &[
    // Actions: exact, `*` as one or more segments, globs within a segment.
    ("sessions.read", "sessions.read", true),
    ("sessions.read", "sessions.write", false),
    ("sessions.read", "sessions.read.extra", false),
    ("*", "anything.here", true),
    ("*", "one", true),
    ("sessions.*", "sessions.read", true),
    ("sessions.*", "sessions.read.deep", true),
    ("sessions.*", "sessions", false),
    ("sessions.*", "messages.send", false),
    ("messages.send.*", "messages.send.telegram", true),
    ("tool.*.forecast", "tool.weather.forecast", true),
    ("tool.*.forecast", "tool.a.b.forecast", true),
    ("tool.*.forecast", "tool.forecast", false),
    ("messages.send.tele*", "messages.send.telegram", true),
    ("messages.send.tele*", "messages.send.slack", false),
    ("messages.*-bot.send", "messages.team-bot.send", true),
    ("config.read.self", "config.read.other", false),
    // A pattern without a resource covers every resource of its action.
    ("fs.read", "fs.read:/etc/shadow", true),
    ("fs.*", "fs.write:/etc/passwd", true),
    ("kv.read", "kv.read:mykey", true),
    // A pattern with a resource does not cover the bare action.
    ("fs.read:/data/**", "fs.read", false),
    // Paths: `*` within a component, `**` across, dots are not separators.
    ("fs.read:/data/*", "fs.read:/data/report.txt", true),
    ("fs.read:/data/*", "fs.read:/data/sub/report.txt", false),
    (
        "fs.read:/data/**",
        "fs.read:/data/sub/deeper/report.txt",
        true,
    ),
    ("fs.read:/data/**", "fs.read:/data", true),
    ("fs.read:/data/**", "fs.read:/database", false),
    ("fs.read:/data/*.txt", "fs.read:/data/report.txt", true),
    ("fs.read:/data/*.txt", "fs.read:/data/report.txt.gz", false),
    ("fs.read:/data/report.txt", "fs.read:/data/report.txt", true),
    (
        "fs.read:/data/report.txt",
        "fs.read:/data/reportXtxt",
        false,
    ),
    (
        "fs.read:/srv/**/logs/*.log",
        "fs.read:/srv/a/b/logs/x.log",
        true,
    ),
    (
        "fs.read:/srv/**/logs/*.log",
        "fs.read:/srv/logs/x.log",
        true,
    ),
    (
        "fs.read:/srv/**/logs/*.log",
        "fs.read:/srv/a/logs/x/y.log",
        false,
    ),
    ("fs.read:/", "fs.read:/", true),
    ("fs.read:/**", "fs.read:/etc/shadow", true),
    // `..` is resolved before matching: no escape from a granted directory.
    ("fs.read:/data/**", "fs.read:/data/../etc/shadow", false),
    (
        "fs.read:/data/**",
        "fs.read:/data/sub/../../etc/shadow",
        false,
    ),
    ("fs.read:/data/**", "fs.read:/data/sub/../report.txt", true),
    (
        "fs.read:/etc/shadow",
        "fs.read:/data/../../../etc/shadow",
        true,
    ),
    ("fs.read:/data/**", "fs.read:/data/./x", true),
    ("fs.read:/data/*", "fs.read://data//x", true),
    (
        "fs.read:/data/my files/**",
        "fs.read:/data/my files/a b.txt",
        true,
    ),
    ("fs.read:/data/*", "fs.read:/data/a b.txt", true),
    ("secret.use:team key", "secret.use:team key", true),
    // Hosts: `*` label covers one or more labels; ports exact or `*`; no port = any port.
    (
        "net.connect:api.github.com:443",
        "net.connect:api.github.com:443",
        true,
    ),
    (
        "net.connect:api.github.com:443",
        "net.connect:api.github.com:8443",
        false,
    ),
    (
        "net.connect:api.github.com:443",
        "net.connect:api.github.com",
        false,
    ),
    (
        "net.connect:api.github.com:*",
        "net.connect:api.github.com:8443",
        true,
    ),
    (
        "net.connect:api.github.com",
        "net.connect:api.github.com:22",
        true,
    ),
    (
        "net.connect:*.example.com:443",
        "net.connect:a.example.com:443",
        true,
    ),
    (
        "net.connect:*.example.com:443",
        "net.connect:a.b.example.com:443",
        true,
    ),
    (
        "net.connect:*.example.com:443",
        "net.connect:example.com:443",
        false,
    ),
    (
        "net.connect:*.example.com:443",
        "net.connect:evil-example.com:443",
        false,
    ),
    (
        "net.connect:*.example.com:443",
        "net.connect:example.com.evil.org:443",
        false,
    ),
    (
        "net.connect:API.GitHub.com:443",
        "net.connect:api.github.com.:443",
        true,
    ),
    ("net.connect:[::1]:8080", "net.connect:[::1]:8080", true),
    ("net.connect:[::1]:8080", "net.connect:[::1]:8081", false),
    (
        "net.connect:127.0.0.1:*",
        "net.connect:127.0.0.1:5432",
        true,
    ),
    // Names: opaque; `*` globs any run of characters, dots included.
    ("secret.use:github_token", "secret.use:github_token", true),
    ("secret.use:github_token", "secret.use:github_token2", false),
    ("docker.restart:web-*", "docker.restart:web-frontend", true),
    ("docker.restart:web-*", "docker.restart:db", false),
    ("kv.read:cache.*", "kv.read:cache.user.42", true),
    // Legacy forms, on either side.
    ("docker:restart", "docker.restart", true),
    ("proxmox:snapshot:create", "proxmox.snapshot.create", true),
    ("docker:*", "docker.logs", true),
    ("filesystem.read./data/*", "fs.read:/data/x", true),
    ("filesystem.read./data/*", "fs.read:/etc/shadow", false),
    ("fs.read:/data/**", "filesystem.read./data/x/y", true),
];

#[test]
fn patterns_match_as_the_table_says() {
    let mut failures = Vec::new();
    for &(pattern, capability, expected) in MATCHES {
        let p = Pattern::parse(pattern).unwrap_or_else(|e| panic!("pattern {pattern}: {e}"));
        let c = Capability::parse(capability)
            .unwrap_or_else(|e| panic!("capability {capability}: {e}"));
        let direct = p.matches(&c);
        let compiled = CapabilitySet::new([p.clone()]).contains(&c);
        if direct != expected || compiled != expected {
            failures.push(format!(
                "{pattern} vs {capability}: expected {expected}, direct {direct}, compiled {compiled}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// (text, canonical form of it as a pattern).
const CANONICAL: &[(&str, &str)] = &[
    ("docker:restart", "docker.restart"),
    ("proxmox:snapshot:create", "proxmox.snapshot.create"),
    ("filesystem.read./data/*", "fs.read:/data/*"),
    ("fs.read:/data//sub/", "fs.read:/data/sub"),
    ("fs.read:/data/**/**/x", "fs.read:/data/**/x"),
    (
        "net.connect:API.Example.COM.:443",
        "net.connect:api.example.com:443",
    ),
    ("net.connect:example.com:*", "net.connect:example.com"),
    ("fs.read:/", "fs.read:/"),
];

#[test]
fn patterns_have_a_canonical_form() {
    for &(text, canonical) in CANONICAL {
        assert_eq!(
            Pattern::parse(text).map(|p| p.to_string()),
            Ok(canonical.to_string()),
            "{text}"
        );
    }
    let capability = Capability::parse("fs.read:/a/./b/../c").map(|c| c.to_string());
    assert_eq!(capability, Ok("fs.read:/a/c".to_string()));
    assert_eq!(
        Capability::parse("fs.read:/../../etc").map(|c| c.to_string()),
        Ok("fs.read:/etc".into())
    );
}

/// (text, substring of the error) for patterns that must be rejected.
const BAD_PATTERNS: &[(&str, &str)] = &[
    ("", "cannot be empty"),
    ("fs..read", "empty segment"),
    (".fs", "empty segment"),
    ("fs.read ", "whitespace"),
    ("fs.re\u{7}ad", "control"),
    ("fs.rea/d", "contains `/`"),
    ("fs.**", "`**`"),
    ("fs.read:", "empty resource"),
    ("fs.read:data/x", "must be absolute"),
    ("fs.read:/data/../etc", "contains `..`"),
    ("fs.read:/data/./x", "contains `.`"),
    ("fs.read:/data/a**", "whole path component"),
    ("*:/data/**", "two or more segments"),
    ("*.read:/data/**", "literal namespace"),
    ("net.connect:example.com:99999", "port `99999`"),
    ("net.connect:example.com:0", "port `0`"),
    ("net.connect:exa mple.com", "invalid label"),
    ("net.connect:exa..com:443", "invalid label"),
    ("net.connect:[::1:80", "missing `]`"),
    ("kv:my key", "two or more segments"),
    ("docker:re/start", "two or more segments"),
];

#[test]
fn bad_patterns_are_rejected_with_a_reason() {
    for &(text, reason) in BAD_PATTERNS {
        match Pattern::parse(text) {
            Ok(p) => panic!("{text:?} parsed as {p}"),
            Err(e) => assert!(
                e.to_string().contains(reason),
                "{text:?}: {e} (wanted {reason:?})"
            ),
        }
    }
}

#[test]
fn capabilities_being_checked_cannot_hold_wildcards_in_action_or_host() {
    for text in ["fs.*", "tool.we*", "net.connect:*.example.com:443"] {
        assert!(Capability::parse(text).is_err(), "{text}");
    }
    // In a path or a name a `*` is an ordinary character.
    let c = Capability::parse("fs.read:/data/a*b").map(|c| c.to_string());
    assert_eq!(c, Ok("fs.read:/data/a*b".into()));
}

#[test]
fn deny_carves_a_scope_out_of_a_wildcard_grant() {
    let grants = CapabilitySet::parse(["fs.*"]).unwrap();
    let denies = CapabilitySet::parse(["fs.write:/etc/**"]).unwrap();
    let cases = [
        ("fs.write:/etc/passwd", false),
        ("fs.write:/etc", false),
        ("fs.write:/tmp/../etc/cron.d/x", false),
        ("fs.read:/etc/passwd", true),
        ("fs.write:/tmp/x", true),
        ("fs.write:/etcetera/x", true),
    ];
    for (text, allowed) in cases {
        let c = Capability::parse(text).unwrap();
        assert_eq!(
            grants.contains(&c) && !denies.contains(&c),
            allowed,
            "{text}"
        );
    }
}

#[test]
fn empty_set_matches_nothing() {
    let empty = CapabilitySet::new([]);
    assert!(empty.is_empty());
    for text in ["a.b", "fs.read:/", "net.connect:x.org:1"] {
        assert!(!empty.contains(&Capability::parse(text).unwrap()), "{text}");
    }
}

#[test]
fn a_set_names_the_pattern_that_matched() {
    let set = CapabilitySet::parse([
        "kv.*",
        "fs.read:/data/**",
        "fs.read:/data/public/*",
        "net.connect:*.org",
    ])
    .unwrap();
    let named = |text: &str| {
        set.find(&Capability::parse(text).unwrap())
            .map(|p| p.to_string())
    };
    // Literal branches win over wildcard ones.
    assert_eq!(
        named("fs.read:/data/public/x"),
        Some("fs.read:/data/public/*".into())
    );
    assert_eq!(
        named("fs.read:/data/private/x"),
        Some("fs.read:/data/**".into())
    );
    assert_eq!(named("kv.write:k"), Some("kv.*".into()));
    assert_eq!(
        named("net.connect:a.example.org:443"),
        Some("net.connect:*.org".into())
    );
    assert_eq!(named("fs.write:/data/x"), None);
}

#[test]
fn many_patterns_in_one_set_match_like_each_pattern_alone() {
    let patterns: Vec<Pattern> = MATCHES
        .iter()
        .map(|(p, _, _)| Pattern::parse(p).unwrap())
        .collect();
    let set = CapabilitySet::new(patterns.clone());
    for &(_, capability, _) in MATCHES {
        let c = Capability::parse(capability).unwrap();
        let any = patterns.iter().any(|p| p.matches(&c));
        assert_eq!(set.contains(&c), any, "{capability}");
    }
}

#[test]
fn a_pattern_knows_whether_it_reaches_inside_a_directory() {
    // (pattern, directory capability, could it cover the directory or something below it)
    let table = [
        ("fs.read:/data/secret/**", "fs.read:/data", true),
        ("fs.read:/data/*/key", "fs.read:/data", true),
        ("fs.read:/**/key", "fs.read:/data", true),
        ("fs.read:/data", "fs.read:/data", true),
        ("fs.read", "fs.read:/data", true),
        ("fs.*", "fs.read:/data", true),
        ("fs.read:/other/**", "fs.read:/data", false),
        ("fs.read:/", "fs.read:/data", false),
        ("fs.write:/data/**", "fs.read:/data", false),
        ("fs.read:/dat*/x", "fs.read:/data", true),
        ("fs.read:/data/x", "fs.read:/data/y", false),
    ];
    for (pattern, dir, expected) in table {
        let p = Pattern::parse(pattern).unwrap();
        let d = Capability::parse(dir).unwrap();
        assert_eq!(p.may_cover_within(&d), expected, "{pattern} within {dir}");
    }
}

#[test]
fn the_default_set_is_empty_and_answers_every_lookup() {
    let empty = CapabilitySet::default();
    let capability = Capability::parse("net.connect:127.0.0.1:80").unwrap();
    assert!(empty.is_empty());
    assert_eq!(empty.find(&capability), None);
    assert_eq!(empty.find_naming(&capability), None);
}

#[test]
fn every_numeric_spelling_of_an_ipv4_address_is_decided_as_its_dotted_quad() {
    // What a resolver reads as 127.0.0.1 (inet_aton's forms) and IPv4-mapped IPv6.
    let spellings = [
        "127.0.0.1",
        "127.1",
        "127.0.1",
        "2130706433",
        "0x7f000001",
        "0x7f.0.0.1",
        "0177.0.0.1",
        "127.0.0.01",
        "[::ffff:127.0.0.1]",
        "[::FFFF:7f00:1]",
    ];
    let deny = CapabilitySet::parse(["net.connect:127.0.0.1:*"]).unwrap();
    for host in spellings {
        let capability = Capability::parse(&format!("net.connect:{host}:80"))
            .unwrap_or_else(|e| panic!("{host}: {e}"));
        assert_eq!(capability.as_str(), "net.connect:127.0.0.1:80", "{host}");
        assert!(deny.contains(&capability), "{host} slips past the deny");
        // A pattern spelled so means the same address.
        let pattern = Pattern::parse(&format!("net.connect:{host}:*")).unwrap();
        assert_eq!(pattern.as_str(), "net.connect:127.0.0.1", "{host}");
    }
}

#[test]
fn an_ipv6_host_is_decided_in_its_canonical_spelling() {
    let cases = [
        ("[0:0:0:0:0:0:0:1]", "[::1]"),
        ("[::1]", "[::1]"),
        ("[2001:DB8:0::1]", "[2001:db8::1]"),
    ];
    for (host, canonical) in cases {
        let capability = Capability::parse(&format!("net.connect:{host}:443")).unwrap();
        assert_eq!(capability.as_str(), format!("net.connect:{canonical}:443"));
        let pattern = Pattern::parse(&format!("net.connect:{host}:443")).unwrap();
        assert!(
            pattern.matches(&Capability::parse(&format!("net.connect:{canonical}:443")).unwrap())
        );
    }
}

#[test]
fn a_host_that_ends_in_a_number_but_is_no_address_is_refused() {
    // With a trailing dot, numbers are a name to a resolver, not an address.
    for host in [
        "256.0.0.1",
        "1.2.3.4.5",
        "08.0.0.1",
        "example.123",
        "127.0.0.1.",
        "0.",
        "[fe80::1%eth0]",
        "[nope]",
    ] {
        let error = Capability::parse(&format!("net.connect:{host}:80"))
            .map(|c| c.to_string())
            .unwrap_err();
        assert!(
            error
                .reason()
                .contains("neither a name nor an IPv4 address")
                || error.reason().contains("not an IPv6 address"),
            "{host}: {error}"
        );
    }
    // Globs are left as written: they match dotted quads, which is all a capability holds.
    let pattern = Pattern::parse("net.connect:10.0.*:*").unwrap();
    assert!(pattern.matches(&Capability::parse("net.connect:10.0.3.4:22").unwrap()));
    assert!(pattern.matches(&Capability::parse("net.connect:10.0.772:22").unwrap()));
}

#[test]
fn a_legacy_path_capability_needs_an_action_of_two_segments() {
    // `fs./etc` would read as `fs:/etc`, whose canonical text is no capability at all.
    for text in ["fs./etc/passwd", "filesystem./data"] {
        assert!(Pattern::parse(text).is_err(), "{text}");
        assert!(Capability::parse(text).is_err(), "{text}");
    }
    assert_eq!(
        Pattern::parse("filesystem.read./data/*").map(|p| p.to_string()),
        Ok("fs.read:/data/*".to_string())
    );
}
