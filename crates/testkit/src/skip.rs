//! Explained skips: the marker line a skipping test prints, and its parser.
//!
//! A test that cannot run on the current kernel must not pass silently: it prints one
//! marker line naming what it needs, and the harness (`cargo xtask test`) checks that the
//! kernel the test ran on really lacks it. A skip the harness cannot explain fails the run.
//!
//! ```text
//! MULTIPROBE-SKIP vm_smoke::tracefs_addrs: needs kernel >= 6.5: available_filter_functions_addrs
//! MULTIPROBE-SKIP attach::multi: needs CONFIG_FPROBE: kprobe_multi links
//! MULTIPROBE-SKIP attach::perf: needs root: perf_event_open
//! ```

use std::fmt;
use std::io::Write;

/// What starts every skip marker line.
pub const SKIP_MARKER: &str = "MULTIPROBE-SKIP ";

/// Separates the test path from the requirement, and the requirement from the reason.
const NEEDS: &str = ": needs ";

/// What a skipped test needed and did not get.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    /// A kernel at least this `(major, minor)` version.
    Kernel(u32, u32),
    /// A kernel config option (`CONFIG_FOO`) that is `=y` or `=m`.
    Config(String),
    /// An effective user id of 0.
    Root,
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Requirement::Kernel(major, minor) => write!(f, "kernel >= {major}.{minor}"),
            Requirement::Config(name) => f.write_str(name),
            Requirement::Root => f.write_str("root"),
        }
    }
}

impl Requirement {
    /// Parses what [`Display`](fmt::Display) writes.
    pub fn parse(text: &str) -> Option<Requirement> {
        if text == "root" {
            return Some(Requirement::Root);
        }
        if let Some(version) = text.strip_prefix("kernel >= ") {
            let (major, minor) = version.split_once('.')?;
            return Some(Requirement::Kernel(major.parse().ok()?, minor.parse().ok()?));
        }
        let is_config = text.starts_with("CONFIG_")
            && text.len() > "CONFIG_".len()
            && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        is_config.then(|| Requirement::Config(text.to_string()))
    }
}

/// One parsed skip marker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkipMarker {
    /// The skipped test, as a Rust path (`crate::module::test`).
    pub test: String,
    /// What it needed.
    pub requirement: Requirement,
    /// Why it needs it, in words.
    pub reason: String,
}

impl fmt::Display for SkipMarker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SKIP_MARKER}{}{NEEDS}{}: {}", self.test, self.requirement, self.reason)
    }
}

/// What [`SkipMarker::find`] makes of a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// No marker in the line.
    None,
    /// A well-formed marker.
    Marker(SkipMarker),
    /// Something that starts like a marker but does not parse; the harness treats it as an
    /// unexplained skip rather than ignoring it.
    Malformed(String),
}

impl SkipMarker {
    /// Looks for a marker anywhere in `line`: under a VM console libtest's `test x ... `
    /// prefix (stdout) and the marker (stderr) end up on the same line.
    pub fn find(line: &str) -> Found {
        let Some(start) = line.find(SKIP_MARKER) else {
            return Found::None;
        };
        let text = line[start..].trim_end();
        let parsed = (|| {
            let rest = &text[SKIP_MARKER.len()..];
            let (test, rest) = rest.split_once(NEEDS)?;
            // A requirement never contains ": "; the reason may.
            let (requirement, reason) = rest.split_once(": ").unwrap_or((rest, ""));
            Some(SkipMarker {
                test: test.to_string(),
                requirement: Requirement::parse(requirement)?,
                reason: reason.to_string(),
            })
        })();
        match parsed {
            Some(marker) => Found::Marker(marker),
            None => Found::Malformed(text.to_string()),
        }
    }
}

/// Writes the marker for a skipped test straight to the process's stderr.
///
/// Not `eprintln!`: libtest captures what the print macros write and shows it only for
/// failing tests, and the harness must see every skip.
pub fn report_skip(test: &str, requirement: Requirement, reason: &str) {
    let marker = SkipMarker { test: test.to_string(), requirement, reason: reason.to_string() };
    let line = format!("{marker}\n");
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// The value a skipping test returns, so that the skip macros work in tests returning `()`
/// and in tests returning `Result<(), E>`.
pub trait SkipReturn {
    /// The "passed" value of the test's return type.
    fn skipped() -> Self;
}

impl SkipReturn for () {
    fn skipped() -> Self {}
}

impl<E> SkipReturn for Result<(), E> {
    fn skipped() -> Self {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marker(requirement: Requirement) -> SkipMarker {
        SkipMarker {
            test: "attach::tests::session".into(),
            requirement,
            reason: "kprobe session: entry and return".into(),
        }
    }

    #[test]
    fn formats_the_documented_lines() {
        assert_eq!(
            marker(Requirement::Kernel(6, 10)).to_string(),
            "MULTIPROBE-SKIP attach::tests::session: needs kernel >= 6.10: \
             kprobe session: entry and return"
        );
        assert_eq!(
            marker(Requirement::Config("CONFIG_FPROBE".into())).to_string(),
            "MULTIPROBE-SKIP attach::tests::session: needs CONFIG_FPROBE: \
             kprobe session: entry and return"
        );
        assert_eq!(
            marker(Requirement::Root).to_string(),
            "MULTIPROBE-SKIP attach::tests::session: needs root: \
             kprobe session: entry and return"
        );
    }

    #[test]
    fn parses_what_it_formats() {
        for requirement in [Requirement::Kernel(5, 18), Requirement::Config("CONFIG_FPROBE".into()), Requirement::Root]
        {
            let m = marker(requirement);
            assert_eq!(SkipMarker::find(&m.to_string()), Found::Marker(m));
        }
    }

    #[test]
    fn finds_markers_after_libtest_output() {
        let line = "test tests::x ... MULTIPROBE-SKIP a::x: needs root: why\r";
        let Found::Marker(m) = SkipMarker::find(line) else {
            panic!("no marker in {line:?}");
        };
        assert_eq!(m.test, "a::x");
        assert_eq!(m.requirement, Requirement::Root);
        assert_eq!(m.reason, "why");
    }

    #[test]
    fn reports_malformed_markers() {
        assert_eq!(SkipMarker::find("test a ... ok"), Found::None);
        for bad in [
            "MULTIPROBE-SKIP a::x: needs kernel >= six: why",
            "MULTIPROBE-SKIP a::x: needs a nap: why",
            "MULTIPROBE-SKIP a::x because",
        ] {
            assert!(matches!(SkipMarker::find(bad), Found::Malformed(_)), "{bad}");
        }
    }
}
