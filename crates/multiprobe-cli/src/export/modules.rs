//! Keeping up with kernel modules: which modules are loaded, polled from `/proc/modules`
//! (a few hundred bytes, read once a second), and what changed since the last look.
//!
//! The exporter attaches a probe of its own to the matching functions of each module that
//! loads later, and hides the functions of a module that went away (see `mod.rs`).

use std::collections::BTreeSet;
use std::io;

/// Modules that loaded and unloaded between two looks.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Change {
    /// Live now, not before.
    pub loaded: Vec<String>,
    /// Live before, gone (or going) now.
    pub unloaded: Vec<String>,
}

/// The modules seen at the last look.
pub struct ModuleWatch {
    /// The last `/proc/modules` text: when it is the same, nothing is parsed.
    last: String,
    live: BTreeSet<String>,
}

impl ModuleWatch {
    /// Starts from the modules loaded now.
    pub fn new() -> io::Result<ModuleWatch> {
        let text = std::fs::read_to_string("/proc/modules")?;
        Ok(ModuleWatch { live: live_modules(&text), last: text })
    }

    /// What changed since the last look, if anything.
    pub fn poll(&mut self) -> io::Result<Option<Change>> {
        let text = std::fs::read_to_string("/proc/modules")?;
        Ok(self.update(text))
    }

    fn update(&mut self, text: String) -> Option<Change> {
        if text == self.last {
            return None;
        }
        let live = live_modules(&text);
        let change = Change {
            loaded: live.difference(&self.live).cloned().collect(),
            unloaded: self.live.difference(&live).cloned().collect(),
        };
        self.last = text;
        self.live = live;
        (!change.loaded.is_empty() || !change.unloaded.is_empty()).then_some(change)
    }
}

/// Names of the modules in the `Live` state (`name size refs deps state address`): a module
/// still `Loading` has not finished its init, one `Unloading` is on its way out.
fn live_modules(proc_modules: &str) -> BTreeSet<String> {
    proc_modules
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_ascii_whitespace();
            let name = fields.next()?;
            (fields.nth(3)? == "Live").then(|| name.to_string())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEFORE: &str = "\
virtio_net 73728 0 - Live 0xffffffffc0340000
net_failover 24576 1 virtio_net, Live 0xffffffffc0320000
";

    #[test]
    fn live_modules_only() {
        let text = format!("{BEFORE}binfmt_misc 28672 0 - Loading 0xffffffffc0400000\n");
        assert_eq!(live_modules(&text), ["net_failover", "virtio_net"].map(String::from).into());
        assert!(live_modules("").is_empty());
        assert!(live_modules("garbage\n\n x y\n").is_empty());
    }

    #[test]
    fn changes_are_reported_once() {
        let mut watch = ModuleWatch { last: BEFORE.into(), live: live_modules(BEFORE) };
        assert_eq!(watch.update(BEFORE.into()), None);
        let loading = format!("{BEFORE}binfmt_misc 28672 0 - Loading 0xffffffffc0400000\n");
        assert_eq!(watch.update(loading), None, "not live yet");
        let loaded = format!("{BEFORE}binfmt_misc 28672 0 - Live 0xffffffffc0400000\n");
        assert_eq!(watch.update(loaded.clone()), Some(Change { loaded: vec!["binfmt_misc".into()], unloaded: vec![] }));
        assert_eq!(watch.update(loaded), None);
        let text = "binfmt_misc 28672 0 - Live 0xffffffffc0400000\n";
        assert_eq!(
            watch.update(text.into()),
            Some(Change { loaded: vec![], unloaded: vec!["net_failover".into(), "virtio_net".into()] })
        );
    }
}
