//! `multiprobe export --config FILE`: several probe sets in one TOML file, each with its own
//! name, patterns, excludes, latency patterns and extra labels (like ebpf_exporter's
//! configs). The command-line flags make the one-set case without a file.
//!
//! ```toml
//! [[set]]
//! name = "vfs"
//! patterns = ["vfs_*"]
//! exclude = ["*xattr*"]
//! latency = ["vfs_read", "vfs_write"]
//! labels = { team = "storage" }
//! ```
//!
//! Errors name the file, the line and the key; nothing is attached from a file with one.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use crate::error::CliError;
use crate::select::parse_pattern;

/// Label names the exporter sets itself, which a set's `labels` may not take.
const RESERVED_LABELS: &[&str] = &["set", "function", "module", "probe", "le", "version", "kernel", "job", "instance"];

/// One probe set, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetSpec {
    /// The `set` label of its series.
    pub name: String,
    /// Functions counted.
    pub patterns: Vec<String>,
    /// Left out of both `patterns` and `latency`.
    pub exclude: Vec<String>,
    /// Functions whose latency is measured too.
    pub latency: Vec<String>,
    /// Extra labels on every series of the set.
    pub labels: BTreeMap<String, String>,
    /// The built-in deny list left out.
    pub no_deny_list: bool,
}

/// The file as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    set: Vec<Spanned<RawSet>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSet {
    name: Spanned<String>,
    patterns: Spanned<Vec<Spanned<String>>>,
    #[serde(default)]
    exclude: Vec<Spanned<String>>,
    #[serde(default)]
    latency: Vec<Spanned<String>>,
    #[serde(default)]
    labels: BTreeMap<Spanned<String>, String>,
    #[serde(default)]
    no_deny_list: bool,
}

/// Reads and checks a config file.
pub fn load(path: &Path) -> Result<Vec<SetSpec>, CliError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        CliError::new(format!("cannot read the config file {}: {e}", path.display()))
            .hint("give the path of a TOML file with [[set]] tables (docs/export.md)")
    })?;
    parse(&text).map_err(|(span, message)| {
        let at = match span {
            Some(span) => format!(", line {}", line_of(&text, span.start)),
            None => String::new(),
        };
        CliError::new(format!("config file {}{at}: {message}", path.display()))
            .hint("each [[set]] takes name, patterns, and optionally exclude, latency, labels, no_deny_list")
    })
}

/// The 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())].iter().filter(|&&b| b == b'\n').count() + 1
}

type ParseError = (Option<Range<usize>>, String);

/// Parses and checks the text; errors carry the byte span they are about.
fn parse(text: &str) -> Result<Vec<SetSpec>, ParseError> {
    let raw: RawFile = toml::from_str(text).map_err(|e| (e.span(), e.message().to_string()))?;
    if raw.set.is_empty() {
        return Err((None, "no [[set]] table: nothing to export".into()));
    }
    let mut specs: Vec<SetSpec> = Vec::with_capacity(raw.set.len());
    for (i, set) in raw.set.into_iter().enumerate() {
        let set = set.into_inner();
        let key = |k: &str| format!("set[{i}].{k}");
        let name = set.name.get_ref();
        if !is_label_value_name(name) {
            return Err((
                Some(set.name.span()),
                format!("{}: {name:?} is not a set name (letters, digits, _ and -, at most 64)", key("name")),
            ));
        }
        if specs.iter().any(|s| &s.name == name) {
            return Err((Some(set.name.span()), format!("{}: another set is named {name:?}", key("name"))));
        }
        if set.patterns.get_ref().is_empty() {
            return Err((Some(set.patterns.span()), format!("{}: at least one pattern", key("patterns"))));
        }
        let patterns = |list: Vec<Spanned<String>>, k: &str| -> Result<Vec<String>, ParseError> {
            list.into_iter()
                .map(|p| {
                    let span = p.span();
                    parse_pattern(&p.into_inner()).map_err(|e| (Some(span), format!("{}: {e}", key(k))))
                })
                .collect()
        };
        let mut labels = BTreeMap::new();
        for (label, value) in set.labels {
            if !is_label_name(label.get_ref()) || RESERVED_LABELS.contains(&label.get_ref().as_str()) {
                return Err((
                    Some(label.span()),
                    format!(
                        "{}: {:?} is not a label name of one's own ([a-zA-Z_][a-zA-Z0-9_]*, not __*, not one of {})",
                        key("labels"),
                        label.get_ref(),
                        RESERVED_LABELS.join(", ")
                    ),
                ));
            }
            labels.insert(label.into_inner(), value);
        }
        specs.push(SetSpec {
            name: set.name.into_inner(),
            patterns: patterns(set.patterns.into_inner(), "patterns")?,
            exclude: patterns(set.exclude, "exclude")?,
            latency: patterns(set.latency, "latency")?,
            labels,
            no_deny_list: set.no_deny_list,
        });
    }
    Ok(specs)
}

/// A Prometheus label name of one's own: `[a-zA-Z_][a-zA-Z0-9_]*`, not starting with `__`.
fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with("__")
}

/// A set name: short, and plain enough for a label value and a log line.
fn is_label_value_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 64 && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(text: &str) -> (usize, String) {
        let (span, message) = parse(text).unwrap_err();
        (span.map_or(0, |s| line_of(text, s.start)), message)
    }

    #[test]
    fn reads_sets() {
        let sets = parse(
            r#"
[[set]]
name = "vfs"
patterns = ["vfs_*"]
exclude = ["*xattr*"]
latency = ["vfs_read"]
labels = { team = "storage" }

[[set]]
name = "tcp"
patterns = ["tcp_*", "ext4:*"]
no_deny_list = true
"#,
        )
        .unwrap();
        assert_eq!(sets.len(), 2);
        assert_eq!(sets[0].name, "vfs");
        assert_eq!(sets[0].exclude, ["*xattr*"]);
        assert_eq!(sets[0].latency, ["vfs_read"]);
        assert_eq!(sets[0].labels.get("team").map(String::as_str), Some("storage"));
        assert_eq!(sets[1].patterns, ["tcp_*", "ext4:*"]);
        assert!(sets[1].no_deny_list && !sets[0].no_deny_list);
        assert!(sets[1].labels.is_empty() && sets[1].latency.is_empty());
    }

    #[test]
    fn errors_name_the_line_and_key() {
        let (line, message) = error("[[set]]\nname = \"a\"\npatterns = [\"x\"]\npatern = 1\n");
        assert_eq!(line, 4, "{message}");
        assert!(message.contains("unknown field `patern`"), "{message}");

        let (line, message) = error("[[set]]\nname = \"a\"\n");
        assert!(message.contains("missing field `patterns`"), "{message}");
        assert_eq!(line, 1, "{message}");

        let (line, message) = error("[[set]]\nname = \"a\"\npatterns = \"vfs_*\"\n");
        assert_eq!(line, 3, "{message}");
        assert!(message.contains("sequence"), "{message}");

        let text = "[[set]]\nname = \"a\"\npatterns = [\"x\"]\n[[set]]\nname = \"a\"\npatterns = [\"y\"]\n";
        assert_eq!(error(text), (5, "set[1].name: another set is named \"a\"".into()));

        let text = "[[set]]\nname = \"a b\"\npatterns = [\"x\"]\n";
        assert_eq!(error(text).0, 2);
        let text = "[[set]]\nname = \"a\"\npatterns = []\n";
        assert_eq!(error(text), (3, "set[0].patterns: at least one pattern".into()));
        let text = "[[set]]\nname = \"a\"\npatterns = [\"x\"]\nexclude = [\"a\\nb\"]\n";
        let (line, message) = error(text);
        assert_eq!(line, 4);
        assert!(message.starts_with("set[0].exclude: "), "{message}");
        for bad in ["function", "__x", "1a", "a-b"] {
            let text = format!("[[set]]\nname = \"a\"\npatterns = [\"x\"]\nlabels = {{ \"{bad}\" = \"v\" }}\n");
            let (line, message) = error(&text);
            assert_eq!(line, 4, "{bad}: {message}");
            assert!(message.starts_with("set[0].labels: "), "{message}");
        }
        assert_eq!(error("").1, "no [[set]] table: nothing to export");
        assert_eq!(error("[[set]]\nname = \"a\"\npatterns = [\"x\"\n").0, 3);
    }
}
