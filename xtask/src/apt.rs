//! apt against a private package list, to find and download Debian kernels of other suites
//! than the machine's own without touching the machine's apt state.
//!
//! Each list lives under `target/vm/apt/<name>/` (sources, indexes, lock) and is passed to
//! apt with `Dir::Etc::SourceList`, `Dir::Etc::SourceParts` and `Dir::State::Lists`. It
//! reuses the mirror of the machine's configured Debian source with other suite names.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, bail};

/// Lists older than this are refreshed.
const MAX_LIST_AGE: Duration = Duration::from_secs(24 * 3600);

/// Used when the machine's sources name no Debian mirror.
const DEFAULT_MIRROR: &str = "http://deb.debian.org/debian";
const DEFAULT_SECURITY_MIRROR: &str = "http://deb.debian.org/debian-security";

/// Debian suite names (codenames and aliases) we recognise in the machine's sources.
const DEBIAN_SUITES: &[&str] = &[
    "buster",
    "bullseye",
    "bookworm",
    "trixie",
    "forky",
    "duke",
    "sid",
    "oldoldstable",
    "oldstable",
    "stable",
    "testing",
    "unstable",
];

/// A private apt package list.
pub struct AptList {
    dir: PathBuf,
}

impl AptList {
    /// A list at `dir` holding the `main` component of `suites` (`trixie`,
    /// `trixie-security`, ...). Only the Packages indexes are fetched: no translations and no
    /// AppStream metadata, which would triple the download.
    pub fn new(dir: PathBuf, suites: &[String]) -> Result<AptList> {
        let (mirror, security) = configured_mirrors();
        let mut sources = String::new();
        for suite in suites {
            let uri = if suite.ends_with("-security") { &security } else { &mirror };
            sources.push_str(&format!("deb [target=Packages] {uri} {suite} main\n"));
        }
        for sub in ["lists/partial", "parts", "cache"] {
            std::fs::create_dir_all(dir.join(sub))?;
        }
        let path = dir.join("sources.list");
        if std::fs::read_to_string(&path).ok().as_deref() != Some(sources.as_str()) {
            std::fs::write(&path, sources)?;
            // Indexes of the previous sources would otherwise look fresh.
            let _ = std::fs::remove_file(dir.join("lists/stamp"));
        }
        Ok(AptList { dir })
    }

    /// The options that point apt at this list instead of the machine's.
    fn apt(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        let dir = self.dir.display();
        cmd.arg("-q")
            .arg(format!("-oDir::Etc::SourceList={dir}/sources.list"))
            .arg(format!("-oDir::Etc::SourceParts={dir}/parts"))
            .arg(format!("-oDir::State::Lists={dir}/lists"))
            .arg(format!("-oDir::Cache={dir}/cache"))
            // Keep apt from writing its binary cache over the machine's one.
            .arg("-oDir::Cache::pkgcache=")
            .arg("-oDir::Cache::srcpkgcache=")
            .arg("-oAcquire::Languages=none")
            // As root apt downloads as the `_apt` user, who cannot write under target/.
            .arg("-oAPT::Sandbox::User=root")
            .env("DEBIAN_FRONTEND", "noninteractive");
        cmd
    }

    /// Whether the indexes are missing or older than a day.
    pub fn is_stale(&self) -> bool {
        let stamp = self.dir.join("lists/stamp");
        let age = std::fs::metadata(stamp)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| SystemTime::now().duration_since(t).ok());
        age.is_none_or(|age| age > MAX_LIST_AGE)
    }

    /// `apt-get update` for this list, at most once per xtask run.
    pub fn update(&self) -> Result<()> {
        static UPDATED: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
        let mut updated = UPDATED.lock().unwrap();
        if updated.contains(&self.dir) {
            return Ok(());
        }
        updated.push(self.dir.clone());
        eprintln!("xtask: apt-get update ({})", self.dir.display());
        let out = self.apt("apt-get").arg("update").output()?;
        // apt-get update exits 0 even when no index could be fetched (offline): only its
        // "W: Failed to fetch" lines tell, and the stamp must then stay old.
        let stderr = String::from_utf8_lossy(&out.stderr);
        let failed = |l: &str| l.starts_with("E:") || l.starts_with("W: Failed to fetch");
        if !out.status.success() || stderr.lines().any(failed) {
            bail!("apt-get update failed:\n{stderr}");
        }
        std::fs::write(self.dir.join("lists/stamp"), "")?;
        Ok(())
    }

    /// Names of the packages matching an extended regular expression.
    pub fn search(&self, regex: &str) -> Result<Vec<String>> {
        let out = self.apt("apt-cache").args(["search", "--names-only", regex]).output()?;
        if !out.status.success() {
            bail!("apt-cache search failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|line| line.split(' ').next())
            .map(str::to_string)
            .collect())
    }

    /// `apt-get download` of the packages into `dir`; returns the `.deb` paths.
    pub fn download(&self, packages: &[String], dir: &Path) -> Result<Vec<PathBuf>> {
        std::fs::create_dir_all(dir)?;
        let status =
            self.apt("apt-get").arg("download").args(packages).current_dir(dir).stdout(Stdio::inherit()).status()?;
        if !status.success() {
            bail!("apt-get download {} failed", packages.join(" "));
        }
        let mut debs = Vec::new();
        for package in packages {
            let prefix = format!("{package}_");
            let deb = std::fs::read_dir(dir)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .find(|p| {
                    let name = p.file_name().unwrap_or_default().to_string_lossy();
                    name.starts_with(&prefix) && name.ends_with(".deb")
                })
                .with_context(|| format!("apt-get download left no {package}_*.deb"))?;
            debs.push(deb);
        }
        Ok(debs)
    }
}

/// The main and security mirrors of the machine's Debian sources, or deb.debian.org.
pub fn configured_mirrors() -> (String, String) {
    let mut entries = Vec::new();
    let mut files = vec![PathBuf::from("/etc/apt/sources.list")];
    if let Ok(dir) = std::fs::read_dir("/etc/apt/sources.list.d") {
        let mut more: Vec<_> = dir.filter_map(|e| e.ok().map(|e| e.path())).collect();
        more.sort();
        files.extend(more);
    }
    for file in files {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        match file.extension().and_then(|e| e.to_str()) {
            Some("sources") => entries.extend(parse_deb822(&text)),
            Some("list") => entries.extend(parse_one_line(&text)),
            _ => {}
        }
    }
    pick_mirrors(&entries)
}

/// One `deb` source: a URI, a suite and whether it has the `main` component.
type Entry = (String, String, bool);

/// The `deb` lines of a one-line-format file.
fn parse_one_line(text: &str) -> Vec<Entry> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("");
        let mut words = line.split_whitespace().peekable();
        if words.next() != Some("deb") {
            continue;
        }
        // Skip `[option=value ...]`, which may span several words.
        if words.peek().is_some_and(|w| w.starts_with('[')) {
            for word in words.by_ref() {
                if word.ends_with(']') {
                    break;
                }
            }
        }
        if let (Some(uri), Some(suite)) = (words.next(), words.next()) {
            let main = words.any(|w| w == "main");
            out.push((uri.to_string(), suite.to_string(), main));
        }
    }
    out
}

/// The `Types: deb` stanzas of a deb822 `.sources` file.
fn parse_deb822(text: &str) -> Vec<Entry> {
    let mut out = Vec::new();
    for stanza in text.split("\n\n") {
        let field = |name: &str| -> Vec<String> {
            stanza
                .lines()
                .filter(|l| !l.starts_with('#'))
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                .map(|v| v.split_whitespace().map(str::to_string).collect())
                .unwrap_or_default()
        };
        let enabled = field("Enabled").first().is_none_or(|v| v != "no");
        if !enabled || !field("Types").iter().any(|t| t == "deb") {
            continue;
        }
        let main = field("Components").iter().any(|c| c == "main");
        for uri in field("URIs") {
            for suite in field("Suites") {
                out.push((uri.clone(), suite, main));
            }
        }
    }
    out
}

/// The first Debian main-archive URI and the first security URI among the entries.
/// A Debian archive is told by a Debian suite name with a `main` component: other vendors'
/// repositories reuse suite names (`bookworm stable`) but not the component.
fn pick_mirrors(entries: &[Entry]) -> (String, String) {
    let base = |suite: &str| suite.split(['-', '/']).next().unwrap_or("").to_string();
    let debian = |suite: &str| DEBIAN_SUITES.contains(&base(suite).as_str());
    let is_security = |suite: &str| suite.ends_with("-security") || suite.ends_with("/updates");
    let main = entries
        .iter()
        .find(|(_, s, main)| *main && debian(s) && !is_security(s))
        .map_or(DEFAULT_MIRROR, |(uri, _, _)| uri.as_str());
    let security = entries
        .iter()
        .find(|(_, s, main)| *main && debian(s) && is_security(s))
        .map_or(DEFAULT_SECURITY_MIRROR, |(uri, _, _)| uri.as_str());
    (main.trim_end_matches('/').to_string(), security.trim_end_matches('/').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_deb822_sources() {
        let text = "Types: deb\n# a comment\nURIs: http://mirror.example/debian\n\
                    Suites: bookworm bookworm-updates\nComponents: main\n\n\
                    Types: deb\nURIs: http://mirror.example/debian-security\n\
                    Suites: bookworm-security\nComponents: main\n\n\
                    Types: deb-src\nURIs: http://src.example/debian\nSuites: sid\n\n\
                    Types: deb\nURIs: https://download.docker.com/linux/debian\n\
                    Suites: bookworm\nComponents: stable\n";
        let entries = parse_deb822(text);
        assert_eq!(entries.len(), 4);
        assert_eq!(
            pick_mirrors(&entries),
            ("http://mirror.example/debian".to_string(), "http://mirror.example/debian-security".to_string())
        );
    }

    #[test]
    fn reads_one_line_sources() {
        let text = "# deb http://old.example/debian sid main\n\
                    deb [arch=amd64 signed-by=/k.gpg] https://packages.example/apt stable x\n\
                    deb http://ftp.example/debian/ bookworm main contrib\n";
        let entries = parse_one_line(text);
        assert_eq!(entries.len(), 2);
        let (main, security) = pick_mirrors(&entries);
        assert_eq!(main, "http://ftp.example/debian");
        assert_eq!(security, DEFAULT_SECURITY_MIRROR);
    }

    #[test]
    fn ignores_other_archives() {
        let text = "Types: deb\nURIs: https://deb.nodesource.com/node_20.x\nSuites: nodistro\n";
        let (main, _) = pick_mirrors(&parse_deb822(text));
        assert_eq!(main, DEFAULT_MIRROR);
    }
}
