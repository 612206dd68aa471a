//! Capability and pattern text: parsing never panics; the canonical form of what parses reads
//! back to the same value; a pattern written as a capability's own text covers it; and a
//! `net` capability names, in its one canonical spelling, the address its host reaches.
#![no_main]

use sigil_policy::{Capability, Pattern};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let pattern = Pattern::parse(text);
    match &pattern {
        Ok(pattern) => {
            let again = Pattern::parse(pattern.as_str())
                .unwrap_or_else(|e| panic!("canonical pattern `{pattern}` does not parse: {e}"));
            assert_eq!(&again, pattern, "canonical pattern reads back differently");
        }
        Err(error) => {
            assert_eq!(error.text(), text);
            assert!(!error.reason().is_empty());
        }
    }
    match Capability::parse(text) {
        Ok(capability) => {
            let again = Capability::parse(capability.as_str()).unwrap_or_else(|e| {
                panic!("canonical capability `{capability}` does not parse: {e}")
            });
            assert_eq!(
                again, capability,
                "canonical capability reads back differently"
            );
            let literal = !capability.as_str().contains('*');
            if let (true, Ok(own)) = (literal, Pattern::parse(capability.as_str())) {
                assert!(
                    own.matches(&capability),
                    "`{own}` does not cover `{capability}`"
                );
                assert!(own.may_cover_within(&capability));
            }
            if let Ok(pattern) = &pattern
                && pattern.matches(&capability)
            {
                assert!(pattern.may_cover_within(&capability));
            }
        }
        Err(error) => {
            assert_eq!(error.text(), text);
            assert!(!error.reason().is_empty());
        }
    }
    // The same text as the host of a network capability.
    let host = text.split([':', '\n']).next().unwrap_or_default();
    let host = if text.starts_with('[') {
        text.split_inclusive(']').next().unwrap_or_default()
    } else {
        host
    };
    if let Ok(capability) = Capability::parse(&format!("net.connect:{host}:443")) {
        let decided = capability
            .as_str()
            .strip_prefix("net.connect:")
            .and_then(|rest| rest.strip_suffix(":443"))
            .unwrap_or_else(|| panic!("`{capability}` lost its shape"));
        let reached = sigil_fuzz::net::reached(host);
        assert_eq!(
            decided,
            reached.canonical(),
            "`net.connect:{host}:443` is decided as `{capability}` but reaches {reached:?}"
        );
    }
});
