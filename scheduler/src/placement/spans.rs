//! Where a field sits in the policy file: byte offsets to line and column,
//! and field paths (`pool[2].cpus.max`) to and from offsets.
//!
//! serde reports a byte span; validation after parsing knows only the field
//! path. A second, span-keeping parse ([`toml::de::DeTable`]) answers both
//! questions, so every error names its line, column and field.

use std::fmt;
use std::ops::Range;

use toml::de::{DeTable, DeValue};

/// One step of a field path: a table key or an array index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Key(String),
    Index(usize),
}

/// A dotted field path such as `pool[2].cpus.max`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldPath(pub Vec<Segment>);

impl FieldPath {
    /// The path one key deeper.
    pub fn key(&self, key: &str) -> FieldPath {
        let mut segments = self.0.clone();
        segments.push(Segment::Key(key.to_string()));
        FieldPath(segments)
    }

    /// The path one array element deeper.
    pub fn index(&self, index: usize) -> FieldPath {
        let mut segments = self.0.clone();
        segments.push(Segment::Index(index));
        FieldPath(segments)
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(document)");
        }
        for (n, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Key(key) if n == 0 => write!(f, "{key}")?,
                Segment::Key(key) => write!(f, ".{key}")?,
                Segment::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |at| at + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// The span-keeping view of a policy file (as much of it as parses).
pub struct SpanIndex<'i> {
    root: DeTable<'i>,
}

impl<'i> SpanIndex<'i> {
    /// Parses `text`, keeping whatever parses even if some of it does not.
    pub fn new(text: &'i str) -> Self {
        let (root, _errors) = DeTable::parse_recoverable(text);
        SpanIndex {
            root: root.into_inner(),
        }
    }

    /// The span of `path`'s key (or array element); if the path is not in
    /// the document (a missing field), the span of its deepest present
    /// ancestor.
    pub fn locate(&self, path: &FieldPath) -> Option<Range<usize>> {
        let mut table = Some(&self.root);
        let mut array: Option<&[toml::Spanned<DeValue<'i>>]> = None;
        let mut found = None;
        for segment in &path.0 {
            let (span, value) = match segment {
                Segment::Key(key) => {
                    let Some((k, v)) =
                        table.and_then(|t| t.iter().find(|(k, _)| k.get_ref() == key))
                    else {
                        break;
                    };
                    (k.span(), v.get_ref())
                }
                Segment::Index(index) => {
                    let Some(v) = array.and_then(|a| a.get(*index)) else {
                        break;
                    };
                    (v.span(), v.get_ref())
                }
            };
            found = Some(span);
            table = value.as_table();
            array = value.as_array().map(|a| &a[..]);
        }
        found
    }

    /// The path of the deepest field whose key or value covers `offset`.
    pub fn path_at(&self, offset: usize) -> FieldPath {
        let mut path = FieldPath::default();
        descend_table(&self.root, offset, &mut path);
        path
    }
}

fn covers(span: &Range<usize>, offset: usize) -> bool {
    span.start <= offset && offset < span.end.max(span.start + 1)
}

fn descend_table(table: &DeTable<'_>, offset: usize, path: &mut FieldPath) {
    for (key, value) in table.iter() {
        if covers(&key.span(), offset) {
            path.0.push(Segment::Key(key.get_ref().to_string()));
            return;
        }
        if covers(&value.span(), offset) || contains_deep(value.get_ref(), offset) {
            path.0.push(Segment::Key(key.get_ref().to_string()));
            descend_value(value.get_ref(), offset, path);
            return;
        }
    }
}

fn descend_value(value: &DeValue<'_>, offset: usize, path: &mut FieldPath) {
    match value {
        DeValue::Table(table) => descend_table(table, offset, path),
        DeValue::Array(array) => {
            for (index, element) in array.iter().enumerate() {
                if covers(&element.span(), offset) || contains_deep(element.get_ref(), offset) {
                    path.0.push(Segment::Index(index));
                    descend_value(element.get_ref(), offset, path);
                    return;
                }
            }
        }
        _ => {}
    }
}

/// Whether any key or value nested in `value` covers `offset` (tables of
/// `[[pool]]` arrays do not always span their bodies).
fn contains_deep(value: &DeValue<'_>, offset: usize) -> bool {
    match value {
        DeValue::Table(table) => table.iter().any(|(k, v)| {
            covers(&k.span(), offset)
                || covers(&v.span(), offset)
                || contains_deep(v.get_ref(), offset)
        }),
        DeValue::Array(array) => array
            .iter()
            .any(|v| covers(&v.span(), offset) || contains_deep(v.get_ref(), offset)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "[defaults]\nmax_runners = 3\n\n[[pool]]\nname = \"a\"\n\n[[pool]]\nname = \"b\"\ncpus = { default = 2, min = 1, max = 4 }\n";

    #[test]
    fn offsets_become_lines_and_columns() {
        assert_eq!(line_column(TEXT, 0), (1, 1));
        let at = TEXT.find("max_runners").unwrap();
        assert_eq!(line_column(TEXT, at), (2, 1));
        let at = TEXT.find("= 3").unwrap();
        assert_eq!(line_column(TEXT, at), (2, 13));
        assert_eq!(line_column("é\nx", 3), (2, 1));
    }

    #[test]
    fn paths_are_located_at_their_keys() {
        let index = SpanIndex::new(TEXT);
        let path = FieldPath::default()
            .key("pool")
            .index(1)
            .key("cpus")
            .key("max");
        assert_eq!(path.to_string(), "pool[1].cpus.max");
        let span = index.locate(&path).unwrap();
        assert_eq!(line_column(TEXT, span.start), (9, 32));
        // A missing field is located at its nearest present ancestor.
        let missing = FieldPath::default().key("pool").index(0).key("partition");
        let span = index.locate(&missing).unwrap();
        assert!(line_column(TEXT, span.start).0 >= 4);
    }

    #[test]
    fn offsets_map_back_to_paths() {
        let index = SpanIndex::new(TEXT);
        let at = TEXT.find("max = 4").unwrap() + 6;
        assert_eq!(index.path_at(at).to_string(), "pool[1].cpus.max");
        let at = TEXT.find("name = \"b\"").unwrap();
        assert_eq!(index.path_at(at).to_string(), "pool[1].name");
        let at = TEXT.find("max_runners").unwrap();
        assert_eq!(index.path_at(at).to_string(), "defaults.max_runners");
    }
}
