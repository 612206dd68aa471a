//! Parsing either encoding into one JSON tree, remembering where every key and value was written.
//!
//! The rest of the crate only sees a `serde_json::Value` and a [`SpanIndex`] that maps JSON
//! pointers back to line and column, so TOML and YAML share one validator.

use std::collections::HashMap;
use std::ops::Range;

use saphyr::{LoadableYamlNode, MarkedYaml, Scalar, YamlData};
use serde_json::{Map, Number, Value};
use toml::de::{DeTable, DeValue};

use crate::diagnostic::{Diagnostic, truncate};
use crate::pointer::child;

/// A 1-based line and column (in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pos {
    pub line: u32,
    pub column: u32,
}

impl Pos {
    const START: Pos = Pos { line: 1, column: 1 };
}

/// Where each value and each key of a parsed manifest was written, by JSON pointer.
///
/// A key is indexed under the pointer of the member it names, so `/execution/tier` has both the
/// position of `tier` (the key) and of `"wasm"` (the value).
#[derive(Debug, Default)]
pub(crate) struct SpanIndex {
    values: HashMap<String, Pos>,
    keys: HashMap<String, Pos>,
}

impl SpanIndex {
    /// Position of the value at `pointer`, or of its nearest ancestor that was written down.
    pub fn value(&self, pointer: &str) -> Pos {
        let mut pointer = pointer;
        loop {
            if let Some(pos) = self.values.get(pointer) {
                return *pos;
            }
            match pointer.rfind('/') {
                Some(cut) => pointer = &pointer[..cut],
                None => return Pos::START,
            }
        }
    }

    /// Position of the key naming the member at `pointer`; the value's position when the member
    /// has no key (the root, an array element).
    pub fn key(&self, pointer: &str) -> Pos {
        self.keys
            .get(pointer)
            .copied()
            .unwrap_or_else(|| self.value(pointer))
    }
}

/// A manifest parsed from text: the tree and where its parts were written.
#[derive(Debug)]
pub(crate) struct Located {
    pub value: Value,
    pub index: SpanIndex,
}

/// Maps byte offsets to line and column.
struct Lines<'a> {
    text: &'a str,
    starts: Vec<usize>,
}

impl<'a> Lines<'a> {
    fn new(text: &'a str) -> Lines<'a> {
        let starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Lines { text, starts }
    }

    fn pos(&self, offset: usize) -> Pos {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.starts.partition_point(|&start| start <= offset).max(1) - 1;
        let start = self.starts.get(line).copied().unwrap_or(0);
        let column = self
            .text
            .get(start..offset)
            .map_or(0, |s| s.chars().count());
        Pos {
            line: to_u32(line + 1),
            column: to_u32(column + 1),
        }
    }

    /// The source text of `span`, for quoting in a diagnostic; `None` when empty.
    fn snippet(&self, span: Range<usize>) -> Option<String> {
        let text = self.text.get(span)?.trim();
        (!text.is_empty()).then(|| truncate(text))
    }

    /// The line holding `offset`, for quoting where a parser gives only a point.
    fn line_at(&self, offset: usize) -> Option<String> {
        let offset = offset.min(self.text.len());
        let start = self.text.get(..offset)?.rfind('\n').map_or(0, |i| i + 1);
        let line = self
            .text
            .get(start..)?
            .split('\n')
            .next()
            .unwrap_or("")
            .trim();
        (!line.is_empty()).then(|| truncate(line))
    }
}

fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Collects problems found while converting a tree, each located.
struct Sink<'a> {
    file: &'a str,
    diagnostics: Vec<Diagnostic>,
}

impl Sink<'_> {
    fn push(&mut self, pos: Pos, pointer: &str, message: String, value: Option<String>) {
        self.diagnostics.push(Diagnostic {
            file: self.file.to_owned(),
            line: pos.line,
            column: pos.column,
            pointer: pointer.to_owned(),
            message,
            value,
        });
    }
}

/// Parses TOML text. Syntax errors come back as diagnostics, every one the parser recovered from.
pub(crate) fn parse_toml(text: &str, file: &str) -> Result<Located, Vec<Diagnostic>> {
    let lines = Lines::new(text);
    let mut sink = Sink {
        file,
        diagnostics: Vec::new(),
    };
    let (root, errors) = DeTable::parse_recoverable(text);
    for error in errors {
        let span = error.span().unwrap_or(0..0);
        let value = lines
            .snippet(span.clone())
            .or_else(|| lines.line_at(span.start));
        sink.push(
            lines.pos(span.start),
            "",
            format!("invalid toml: {}", lowercase_first(error.message().trim())),
            value,
        );
    }
    if !sink.diagnostics.is_empty() {
        return Err(sink.diagnostics);
    }
    let mut index = SpanIndex::default();
    index.values.insert(String::new(), Pos::START);
    let value = toml_table(root.get_ref(), "", &lines, &mut index, &mut sink);
    if sink.diagnostics.is_empty() {
        Ok(Located { value, index })
    } else {
        Err(sink.diagnostics)
    }
}

fn toml_table(
    table: &DeTable<'_>,
    pointer: &str,
    lines: &Lines<'_>,
    index: &mut SpanIndex,
    sink: &mut Sink<'_>,
) -> Value {
    let mut map = Map::new();
    for (key, value) in table.iter() {
        let member = child(pointer, key.get_ref());
        index
            .keys
            .insert(member.clone(), lines.pos(key.span().start));
        let converted = toml_value(value.get_ref(), value.span(), &member, lines, index, sink);
        map.insert(key.get_ref().to_string(), converted);
    }
    Value::Object(map)
}

fn toml_value(
    value: &DeValue<'_>,
    span: Range<usize>,
    pointer: &str,
    lines: &Lines<'_>,
    index: &mut SpanIndex,
    sink: &mut Sink<'_>,
) -> Value {
    let pos = lines.pos(span.start);
    index.values.insert(pointer.to_owned(), pos);
    match value {
        DeValue::String(s) => Value::String(s.to_string()),
        DeValue::Boolean(b) => Value::Bool(*b),
        DeValue::Datetime(d) => Value::String(d.to_string()),
        DeValue::Integer(i) => {
            let digits = i.as_str();
            let number = i64::from_str_radix(digits, i.radix())
                .map(Number::from)
                .or_else(|_| u64::from_str_radix(digits, i.radix()).map(Number::from));
            match number {
                Ok(n) => Value::Number(n),
                Err(_) => {
                    sink.push(
                        pos,
                        pointer,
                        "integer is out of range".into(),
                        Some(i.to_string()),
                    );
                    Value::Null
                }
            }
        }
        DeValue::Float(f) => {
            let number = f.as_str().parse::<f64>().ok().and_then(Number::from_f64);
            match number {
                Some(n) => Value::Number(n),
                None => {
                    sink.push(
                        pos,
                        pointer,
                        "infinite and nan floats are not allowed".into(),
                        Some(f.to_string()),
                    );
                    Value::Null
                }
            }
        }
        DeValue::Array(array) => Value::Array(
            array
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    let item_pointer = child(pointer, &i.to_string());
                    toml_value(
                        item.get_ref(),
                        item.span(),
                        &item_pointer,
                        lines,
                        index,
                        sink,
                    )
                })
                .collect(),
        ),
        DeValue::Table(table) => toml_table(table, pointer, lines, index, sink),
    }
}

/// Parses YAML text (one document). Syntax errors come back as a diagnostic.
pub(crate) fn parse_yaml(text: &str, file: &str) -> Result<Located, Vec<Diagnostic>> {
    let lines = Lines::new(text);
    let mut sink = Sink {
        file,
        diagnostics: Vec::new(),
    };
    let documents = match MarkedYaml::load_from_str(text) {
        Ok(documents) => documents,
        Err(error) => {
            // The marker's line can run past the end of the text (an error found at the end
            // of the stream); its character index cannot, so the position comes from that.
            let offset = char_offset_to_byte(text, error.marker().index());
            sink.push(
                lines.pos(offset),
                "",
                format!("invalid yaml: {}", lowercase_first(error.info().trim())),
                lines.line_at(offset),
            );
            return Err(sink.diagnostics);
        }
    };
    let mut documents = documents.into_iter();
    let Some(document) = documents.next() else {
        sink.push(Pos::START, "", "the manifest is empty".into(), None);
        return Err(sink.diagnostics);
    };
    if let Some(extra) = documents.next() {
        sink.push(
            yaml_pos(&extra, &lines),
            "",
            "a manifest holds exactly one yaml document".into(),
            None,
        );
        return Err(sink.diagnostics);
    }
    let mut index = SpanIndex::default();
    let value = yaml_value(&document, "", &lines, &mut index, &mut sink);
    // The document node of a block mapping starts at its first key; errors about the whole
    // manifest read better at the top of the file.
    index.values.insert(String::new(), Pos::START);
    if sink.diagnostics.is_empty() {
        Ok(Located { value, index })
    } else {
        Err(sink.diagnostics)
    }
}

fn char_offset_to_byte(text: &str, chars: usize) -> usize {
    text.char_indices()
        .nth(chars)
        .map_or(text.len(), |(byte, _)| byte)
}

/// Where `node` starts. The parser's line and column can lie past the end of the text (an
/// empty node at the end of the stream, such as the key of `? `); its character index cannot,
/// so a place outside the text comes from that.
fn yaml_pos(node: &MarkedYaml<'_>, lines: &Lines<'_>) -> Pos {
    let line = node.span.start.line().max(1);
    let column = node.span.start.col() + 1;
    let width = lines.starts.get(line - 1).map(|&start| {
        let end = lines
            .starts
            .get(line)
            .map_or(lines.text.len(), |&next| next - 1);
        lines.text.get(start..end).map_or(0, |s| s.chars().count())
    });
    match width {
        Some(width) if column <= width + 1 => Pos {
            line: to_u32(line),
            column: to_u32(column),
        },
        _ => lines.pos(char_offset_to_byte(lines.text, node.span.start.index())),
    }
}

fn yaml_value(
    node: &MarkedYaml<'_>,
    pointer: &str,
    lines: &Lines<'_>,
    index: &mut SpanIndex,
    sink: &mut Sink<'_>,
) -> Value {
    let pos = yaml_pos(node, lines);
    index.values.insert(pointer.to_owned(), pos);
    match &node.data {
        YamlData::Value(scalar) => yaml_scalar(scalar, pos, pointer, sink),
        YamlData::Representation(text, style, tag) => {
            match Scalar::parse_from_cow_and_metadata(text.clone(), *style, tag.as_ref()) {
                Some(scalar) => yaml_scalar(&scalar, pos, pointer, sink),
                None => {
                    sink.push(
                        pos,
                        pointer,
                        "value does not match its yaml tag".into(),
                        Some(truncate(text)),
                    );
                    Value::Null
                }
            }
        }
        YamlData::Sequence(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    yaml_value(item, &child(pointer, &i.to_string()), lines, index, sink)
                })
                .collect(),
        ),
        YamlData::Mapping(entries) => {
            let mut map = Map::new();
            for (key, value) in entries {
                let Some(name) = yaml_key(key) else {
                    sink.push(
                        yaml_pos(key, lines),
                        pointer,
                        "mapping keys must be plain text".into(),
                        None,
                    );
                    continue;
                };
                let member = child(pointer, &name);
                index.keys.insert(member.clone(), yaml_pos(key, lines));
                let converted = yaml_value(value, &member, lines, index, sink);
                map.insert(name, converted);
            }
            Value::Object(map)
        }
        YamlData::Tagged(tag, _) => {
            sink.push(
                pos,
                pointer,
                format!("yaml tag `{tag}` is not supported"),
                None,
            );
            Value::Null
        }
        YamlData::Alias(_) => {
            sink.push(pos, pointer, "yaml aliases are not supported".into(), None);
            Value::Null
        }
        YamlData::BadValue => {
            sink.push(pos, pointer, "value cannot be read".into(), None);
            Value::Null
        }
    }
}

fn yaml_scalar(scalar: &Scalar<'_>, pos: Pos, pointer: &str, sink: &mut Sink<'_>) -> Value {
    match scalar {
        Scalar::Null => Value::Null,
        Scalar::Boolean(b) => Value::Bool(*b),
        Scalar::Integer(i) => Value::Number(Number::from(*i)),
        Scalar::FloatingPoint(f) => match Number::from_f64(f.into_inner()) {
            Some(n) => Value::Number(n),
            None => {
                sink.push(
                    pos,
                    pointer,
                    "infinite and nan floats are not allowed".into(),
                    Some(f.to_string()),
                );
                Value::Null
            }
        },
        Scalar::String(s) => Value::String(s.to_string()),
    }
}

/// The text of a mapping key; scalars other than strings (`8080:`) are keys by their text.
fn yaml_key(key: &MarkedYaml<'_>) -> Option<String> {
    let scalar = match &key.data {
        YamlData::Value(scalar) => scalar.clone(),
        YamlData::Representation(text, style, tag) => {
            Scalar::parse_from_cow_and_metadata(text.clone(), *style, tag.as_ref())?
        }
        _ => return None,
    };
    match scalar {
        Scalar::String(s) => Some(s.into_owned()),
        Scalar::Integer(i) => Some(i.to_string()),
        Scalar::Boolean(b) => Some(b.to_string()),
        Scalar::FloatingPoint(f) => Some(f.to_string()),
        Scalar::Null => None,
    }
}

fn lowercase_first(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_offsets_become_char_columns() {
        let lines = Lines::new("a = 1\nné = \"é\"\n");
        assert_eq!(lines.pos(0), Pos { line: 1, column: 1 });
        assert_eq!(lines.pos(6), Pos { line: 2, column: 1 });
        // `=` after the two-byte `é`.
        assert_eq!(lines.pos(10), Pos { line: 2, column: 4 });
        assert_eq!(lines.pos(999), Pos { line: 3, column: 1 });
    }

    #[test]
    fn toml_keys_and_values_are_indexed() {
        let text = "id = \"x\"\n[execution]\ntier = \"wasm\"\n[[hooks]]\nevent = \"a\"\n";
        let located = parse_toml(text, "plugin.toml").map_err(|e| format!("{e:?}"));
        let Ok(located) = located else {
            unreachable!("{located:?}")
        };
        let index = &located.index;
        assert_eq!(index.key("/id"), Pos { line: 1, column: 1 });
        assert_eq!(index.value("/id"), Pos { line: 1, column: 6 });
        assert_eq!(index.value("/execution/tier"), Pos { line: 3, column: 8 });
        assert_eq!(index.key("/execution/tier"), Pos { line: 3, column: 1 });
        assert_eq!(index.value("/hooks/0/event"), Pos { line: 5, column: 9 });
        // An unwritten member falls back to its table, here the `[[hooks]]` header.
        assert_eq!(index.value("/hooks/0/missing"), Pos { line: 4, column: 1 });
    }

    #[test]
    fn a_node_the_parser_places_past_the_end_is_located_inside_the_text() {
        // `? ` is an explicit key with no text: the parser puts that empty key on a line the
        // text does not have.
        for text in ["? ", "? \n", "id: a\n? "] {
            let diagnostics = match parse_yaml(text, "plugin.yaml") {
                Ok(_) => unreachable!("{text:?} parsed"),
                Err(diagnostics) => diagnostics,
            };
            let lines: Vec<&str> = text.split('\n').collect();
            for d in &diagnostics {
                let line = usize::try_from(d.line).unwrap_or(usize::MAX);
                assert!((1..=lines.len()).contains(&line), "{text:?}: {d:?}");
                let width = lines[line - 1].chars().count();
                assert!(
                    (1..=width + 1).contains(&usize::try_from(d.column).unwrap_or(usize::MAX)),
                    "{text:?}: {d:?}"
                );
            }
        }
    }

    #[test]
    fn a_yaml_syntax_error_is_located_on_a_line_the_text_has() {
        // (text, line, column): the error found at the end of the stream is placed where the
        // text ends, never on a line after it.
        let cases = [
            ("id: a\nname: b\nve", 3, 3),
            ("id: a\nve", 2, 3),
            ("a: [1,\n", 2, 1),
            ("a: b\n  c: d\n", 2, 4),
            ("a: \"b\n", 1, 4),
        ];
        for (text, line, column) in cases {
            let diagnostics = match parse_yaml(text, "plugin.yaml") {
                Ok(_) => unreachable!("{text:?} parsed"),
                Err(diagnostics) => diagnostics,
            };
            let at: Vec<(u32, u32)> = diagnostics.iter().map(|d| (d.line, d.column)).collect();
            assert_eq!(at, vec![(line, column)], "{text:?}: {diagnostics:?}");
        }
    }

    #[test]
    fn yaml_keys_and_values_are_indexed() {
        let text = "id: x\nexecution:\n  tier: wasm\nhooks:\n  - event: a\n";
        let located = parse_yaml(text, "plugin.yaml").map_err(|e| format!("{e:?}"));
        let Ok(located) = located else {
            unreachable!("{located:?}")
        };
        let index = &located.index;
        assert_eq!(index.key("/id"), Pos { line: 1, column: 1 });
        assert_eq!(index.value("/id"), Pos { line: 1, column: 5 });
        assert_eq!(index.key("/execution"), Pos { line: 2, column: 1 });
        assert_eq!(index.value("/execution/tier"), Pos { line: 3, column: 9 });
        assert_eq!(
            index.value("/hooks/0/event"),
            Pos {
                line: 5,
                column: 12
            }
        );
    }
}
