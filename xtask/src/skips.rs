//! The skip policy: a test may skip only when the kernel it ran on really lacks what the
//! test says it needs. See `testkit`'s `require_*!` macros for the markers.

use std::path::Path;

use testkit::{Found, KernelConfig, Requirement, SkipMarker};

/// What the policy needs to know about the kernel (and user) a test ran on.
pub struct KernelFacts {
    /// `uname -r`.
    pub release: String,
    /// `(major, minor)` from the release.
    pub version: (u32, u32),
    /// Its build config, when known.
    pub config: Option<KernelConfig>,
    /// Whether the tests ran as root.
    pub root: bool,
}

impl KernelFacts {
    /// The machine xtask runs on, read the way testkit reads it inside the tests.
    pub fn host() -> KernelFacts {
        let release = testkit::kernel_release();
        KernelFacts {
            version: testkit::parse_version(&release).unwrap_or((0, 0)),
            config: KernelConfig::find(&release),
            root: testkit::is_root(),
            release,
        }
    }

    /// A VM kernel: its release as the guest printed it, the config file shipped with it.
    /// Tests in the VMs run as root.
    pub fn vm(release: &str, config: Option<&Path>) -> KernelFacts {
        KernelFacts {
            release: release.to_string(),
            version: testkit::parse_version(release).unwrap_or((0, 0)),
            config: config.and_then(|path| KernelConfig::read(path).ok()),
            root: true,
        }
    }

    /// `Ok(why the skip is legitimate)` or `Err(why it is not)`.
    pub fn explain(&self, requirement: &Requirement) -> Result<String, String> {
        let release = &self.release;
        match requirement {
            Requirement::Kernel(major, minor) => {
                if self.version < (*major, *minor) {
                    Ok(format!("{release} is older than {major}.{minor}"))
                } else {
                    Err(format!("{release} is {major}.{minor} or newer"))
                }
            }
            Requirement::Config(name) => match &self.config {
                None => Err(format!("the config of {release} is unknown")),
                Some(config) if config.enabled(name) => {
                    Err(format!("{release} has {name}={}", config.value(name).unwrap_or("?")))
                }
                Some(_) => Ok(format!("{release} is built without {name}")),
            },
            Requirement::Root => {
                if self.root {
                    Err("the tests ran as root".to_string())
                } else {
                    Ok("the tests ran as a normal user".to_string())
                }
            }
        }
    }
}

/// The skips seen in one test run, sorted by the policy.
#[derive(Default)]
pub struct SkipReport {
    /// `test: requirement (why that is fine)`.
    pub explained: Vec<String>,
    /// `test: requirement, but why that is wrong`.
    pub unexplained: Vec<String>,
}

impl SkipReport {
    /// Checks a line of test output for a skip marker and files it.
    pub fn scan_line(&mut self, line: &str, facts: &KernelFacts) {
        match SkipMarker::find(line) {
            Found::None => {}
            Found::Malformed(text) => self.unexplained.push(format!("malformed skip marker: {text}")),
            Found::Marker(marker) => {
                let requirement = &marker.requirement;
                match facts.explain(requirement) {
                    Ok(why) => self.explained.push(format!("{}: {requirement} ({why})", marker.test)),
                    Err(why) => {
                        self.unexplained.push(format!("{} skipped, needing {requirement}, but {why}", marker.test))
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(version: (u32, u32), config: Option<&str>, root: bool) -> KernelFacts {
        KernelFacts {
            release: format!("{}.{}.0-test", version.0, version.1),
            version,
            config: config.map(KernelConfig::parse),
            root,
        }
    }

    fn report(line: &str, facts: &KernelFacts) -> SkipReport {
        let mut report = SkipReport::default();
        report.scan_line(line, facts);
        report
    }

    const CONFIG: &str = "CONFIG_FPROBE=y\nCONFIG_BINFMT_MISC=m\n# CONFIG_KPROBES is not set\n";

    #[test]
    fn kernel_version_skips() {
        let line = "MULTIPROBE-SKIP t::session: needs kernel >= 6.10: kprobe session";
        let old = report(line, &facts((6, 9), None, true));
        assert_eq!(old.explained.len(), 1);
        assert!(old.unexplained.is_empty());
        for new_enough in [(6, 10), (6, 12), (7, 0)] {
            let new = report(line, &facts(new_enough, None, true));
            assert_eq!(new.unexplained.len(), 1, "{new_enough:?}");
            assert!(new.unexplained[0].contains("t::session"));
            assert!(new.unexplained[0].contains("kernel >= 6.10"));
        }
    }

    #[test]
    fn config_skips() {
        let with = facts((6, 12), Some(CONFIG), true);
        let skip = |name: &str| format!("MULTIPROBE-SKIP t::x: needs {name}: why");
        // Off (unset or absent): explained.
        assert_eq!(report(&skip("CONFIG_KPROBES"), &with).explained.len(), 1);
        assert_eq!(report(&skip("CONFIG_NOPE"), &with).explained.len(), 1);
        // =y or =m: not.
        assert_eq!(report(&skip("CONFIG_FPROBE"), &with).unexplained.len(), 1);
        assert_eq!(report(&skip("CONFIG_BINFMT_MISC"), &with).unexplained.len(), 1);
        // Unknown config: cannot be explained.
        let without = facts((6, 12), None, true);
        assert_eq!(report(&skip("CONFIG_KPROBES"), &without).unexplained.len(), 1);
    }

    #[test]
    fn root_skips() {
        let line = "test a ... MULTIPROBE-SKIP t::x: needs root: bpf()";
        assert_eq!(report(line, &facts((6, 1), None, false)).explained.len(), 1);
        assert_eq!(report(line, &facts((6, 1), None, true)).unexplained.len(), 1);
    }

    #[test]
    fn malformed_markers_fail_and_other_lines_pass() {
        let any = facts((6, 1), None, true);
        let bad = report("MULTIPROBE-SKIP t::x: needs luck: why", &any);
        assert_eq!(bad.unexplained.len(), 1);
        let none = report("test t::x ... ok", &any);
        assert!(none.explained.is_empty() && none.unexplained.is_empty());
    }
}
