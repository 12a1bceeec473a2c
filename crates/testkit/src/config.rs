//! The kernel's build configuration (`CONFIG_*` options), read from wherever this machine
//! keeps it.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

/// A parsed kernel `.config`: which options are built in (`=y`) or modular (`=m`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KernelConfig {
    /// Every `CONFIG_X=value` line, keyed by `CONFIG_X`. `# CONFIG_X is not set` lines are
    /// left out: an absent option and an unset one mean the same.
    values: HashMap<String, String>,
}

impl KernelConfig {
    /// Parses the text of a kernel `.config` file.
    pub fn parse(text: &str) -> KernelConfig {
        let values = text
            .lines()
            .filter(|line| line.starts_with("CONFIG_"))
            .filter_map(|line| line.split_once('='))
            .map(|(name, value)| (name.trim().to_string(), value.trim().to_string()))
            .collect();
        KernelConfig { values }
    }

    /// Reads a config file; a name ending in `.gz` (like `/proc/config.gz`) is decompressed.
    pub fn read(path: &Path) -> std::io::Result<KernelConfig> {
        let bytes = std::fs::read(path)?;
        let text = if path.extension().is_some_and(|e| e == "gz") {
            let mut text = String::new();
            flate2::read::GzDecoder::new(bytes.as_slice()).read_to_string(&mut text)?;
            text
        } else {
            String::from_utf8_lossy(&bytes).into_owned()
        };
        Ok(KernelConfig::parse(&text))
    }

    /// Whether `name` is `=y` or `=m`. The `CONFIG_` prefix is optional.
    pub fn enabled(&self, name: &str) -> bool {
        matches!(self.value(name), Some("y" | "m"))
    }

    /// The raw value of an option (`y`, `m`, a number, a quoted string), if it is set.
    pub fn value(&self, name: &str) -> Option<&str> {
        let key = if name.starts_with("CONFIG_") { name.to_string() } else { format!("CONFIG_{name}") };
        self.values.get(&key).map(String::as_str)
    }

    /// Finds and reads the config of the kernel whose `uname -r` is `release`, in this order:
    /// the file named by `MULTIPROBE_KERNEL_CONFIG` (set inside the test VMs), then
    /// `/boot/config-<release>`, then `/proc/config.gz`. `None` when none can be read.
    ///
    /// When the variable is set it is the only source tried: it names the config of the
    /// kernel under test, and quietly falling back to another file could describe a
    /// different kernel.
    pub fn find(release: &str) -> Option<KernelConfig> {
        if let Some(path) = std::env::var_os(crate::ENV_KERNEL_CONFIG) {
            return KernelConfig::read(Path::new(&path)).ok();
        }
        let boot = format!("/boot/config-{release}");
        [boot.as_str(), "/proc/config.gz"].iter().find_map(|path| KernelConfig::read(Path::new(path)).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
# Automatically generated file; DO NOT EDIT.
CONFIG_BPF_SYSCALL=y
CONFIG_BINFMT_MISC=m
# CONFIG_FPROBE is not set
CONFIG_NR_CPUS=64
CONFIG_LOCALVERSION=\"\"
";

    #[test]
    fn y_and_m_are_enabled() {
        let config = KernelConfig::parse(SAMPLE);
        assert!(config.enabled("CONFIG_BPF_SYSCALL"));
        assert!(config.enabled("CONFIG_BINFMT_MISC"));
        assert!(config.enabled("BPF_SYSCALL"), "prefix is optional");
    }

    #[test]
    fn unset_absent_and_valued_options_are_not_enabled() {
        let config = KernelConfig::parse(SAMPLE);
        assert!(!config.enabled("CONFIG_FPROBE"));
        assert!(!config.enabled("CONFIG_KPROBES"));
        assert!(!config.enabled("CONFIG_NR_CPUS"));
        assert_eq!(config.value("CONFIG_NR_CPUS"), Some("64"));
        assert_eq!(config.value("CONFIG_FPROBE"), None);
    }

    #[test]
    fn reads_gzip_configs() {
        use std::io::Write;
        let dir = std::env::temp_dir().join(format!("testkit-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("config.gz");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(SAMPLE.as_bytes()).unwrap();
        std::fs::write(&path, gz.finish().unwrap()).unwrap();
        let config = KernelConfig::read(&path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(config.enabled("CONFIG_BINFMT_MISC"));
    }
}
