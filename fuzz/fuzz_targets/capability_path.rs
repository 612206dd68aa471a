//! Paths in capabilities: whatever `..` and `.` a path holds, the parsed capability's path is
//! the lexical resolution of it, never above `/`, with no `.`, `..` or empty component left;
//! the legacy spelling (`filesystem.read./p`) means the same; and a grant on a directory
//! covers the capability exactly when the resolved path is inside that directory.
#![no_main]

use sigil_policy::{Capability, CapabilitySet, Pattern};

/// Resolves `.` and `..` the way a path walk from `/` does, never going above `/`.
fn resolve(path: &str) -> Vec<&str> {
    let mut out = Vec::new();
    for component in path.split('/') {
        match component {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(path) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(capability) = Capability::parse(&format!("fs.read:{path}")) else {
        return;
    };
    assert!(path.starts_with('/'), "relative path `{path}` was accepted");
    let rendered = capability
        .as_str()
        .strip_prefix("fs.read:")
        .unwrap_or_else(|| panic!("`{capability}` lost its action"));
    let components: Vec<&str> = rendered
        .split('/')
        .skip(1)
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(
        components,
        resolve(path),
        "`{path}` resolved as `{rendered}`"
    );
    assert!(
        components.iter().all(|c| *c != ".." && *c != "."),
        "`{rendered}` keeps a dot component"
    );
    assert!(rendered.starts_with('/') && !rendered.contains("//"));

    // The Go-era spelling of the same capability.
    if !path.contains(':')
        && let Ok(legacy) = Capability::parse(&format!("filesystem.read.{path}"))
    {
        assert_eq!(
            legacy, capability,
            "the legacy spelling of `{path}` differs"
        );
    }

    // A grant on the first directory the path names covers it only if the path stays inside.
    let Some(first) = path.split('/').find(|c| !c.is_empty() && !c.contains('*')) else {
        return;
    };
    if first == "." || first == ".." {
        return;
    }
    let Ok(grant) = Pattern::parse(&format!("fs.read:/{first}/**")) else {
        return;
    };
    let inside = components.first() == Some(&first);
    assert_eq!(
        grant.matches(&capability),
        inside,
        "`{grant}` and `{capability}`"
    );
    let set = CapabilitySet::new([grant.clone()]);
    assert_eq!(
        set.contains(&capability),
        inside,
        "compiled `{grant}` and `{capability}`"
    );
});
