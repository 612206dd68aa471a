//! JSON pointers: building them, and turning them into the dotted paths shown in messages.

use serde_json::Value;

/// Appends one reference token to a JSON pointer, escaping `~` and `/`.
pub(crate) fn child(pointer: &str, token: &str) -> String {
    let mut out = String::with_capacity(pointer.len() + token.len() + 1);
    out.push_str(pointer);
    out.push('/');
    for c in token.chars() {
        match c {
            '~' => out.push_str("~0"),
            '/' => out.push_str("~1"),
            c => out.push(c),
        }
    }
    out
}

/// The unescaped reference tokens of a pointer.
fn tokens(pointer: &str) -> impl Iterator<Item = String> + '_ {
    pointer
        .split('/')
        .skip(1)
        .map(|token| token.replace("~1", "/").replace("~0", "~"))
}

/// A pointer as the path a manifest author reads: `execution.limits.fuel`, `hooks[1].event`.
///
/// `root` decides whether a numeric token is an array index or a table key.
pub(crate) fn display_path(root: &Value, pointer: &str) -> String {
    let mut out = String::new();
    let mut current = Some(root);
    for token in tokens(pointer) {
        match current {
            Some(Value::Array(items)) => {
                out.push('[');
                out.push_str(&token);
                out.push(']');
                current = token.parse::<usize>().ok().and_then(|i| items.get(i));
            }
            other => {
                if !out.is_empty() {
                    out.push('.');
                }
                let plain = !token.is_empty()
                    && token
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
                if plain {
                    out.push_str(&token);
                } else {
                    out.push('"');
                    out.push_str(&token);
                    out.push('"');
                }
                current = other.and_then(|v| v.get(&token));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        let root = serde_json::json!({
            "hooks": [{"event": "x"}],
            "dependencies": {"0": "1", "a.b": "2"},
        });
        let cases = [
            ("", ""),
            ("/hooks/0/event", "hooks[0].event"),
            ("/dependencies/0", "dependencies.0"),
            ("/dependencies/a.b", "dependencies.\"a.b\""),
            ("/x~1y/z", "\"x/y\".z"),
        ];
        for (pointer, expected) in cases {
            assert_eq!(display_path(&root, pointer), expected, "{pointer}");
        }
    }

    #[test]
    fn building() {
        assert_eq!(child("", "a/b~c"), "/a~1b~0c");
        assert_eq!(child("/x", "0"), "/x/0");
    }
}
