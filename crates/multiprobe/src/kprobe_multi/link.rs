//! The link a kprobe_multi attach returns: detaches on drop, pins, and reports what the
//! kernel attached.

use std::io;
use std::path::Path;

use super::Mode;
use super::plan::Plan;
use crate::error::PinError;
use crate::features::{self, LinkInfoLevel};
use crate::link::{Link, LinkType};
use crate::symbols::{Function, Kallsyms};
use crate::sys;

/// How a set of functions was attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachMode {
    /// One kprobe_multi link.
    KprobeMulti,
    /// One perf-event kprobe per function: the fallback on kernels without kprobe_multi.
    PerFunctionKprobes,
}

/// What is attached, and where: a kprobe_multi link, or the per-function kprobes standing in
/// for one. Dropping it detaches everything.
#[derive(Debug)]
pub struct KprobeMultiLink {
    links: Vec<Link>,
    attach_mode: AttachMode,
    mode: Mode,
    functions: Vec<Function>,
    cookies: Option<Vec<u64>>,
    skipped: Vec<Function>,
    /// Per-function kprobes next to the kprobe_multi link(s), for functions it cannot take.
    kprobe_links: Vec<Link>,
    kprobe_only: Vec<KprobeOnly>,
}

/// A function attached by its own perf-event kprobe next to a kprobe_multi link, because
/// kprobe_multi cannot take it (see [`super::KprobeMulti::kprobe_refused`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KprobeOnly {
    /// The function, as given.
    pub function: Function,
    /// Its cookie, when cookies were given.
    pub cookie: Option<u64>,
    /// Why kprobe_multi could not take it, e.g. "not in available_filter_functions".
    pub reason: String,
}

/// One attached function, as link info reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachedTarget {
    /// The address the kernel attached (what was given: symbol address or patch site); 0
    /// when kallsyms addresses are hidden from this user.
    pub address: u64,
    /// The cookie, when the kernel reports cookies (6.9+).
    pub cookie: Option<u64>,
    /// The function at that address: known for per-function kprobes, filled in for
    /// kprobe_multi links by [`KprobeMultiInfo::resolve_names`].
    pub function: Option<String>,
    /// Its module, `None` for vmlinux.
    pub module: Option<String>,
}

/// What the kernel reports about a kprobe_multi link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KprobeMultiInfo {
    /// Link id.
    pub id: u32,
    /// Attached program id.
    pub prog_id: u32,
    /// Whether it is a return probe (`BPF_F_KPROBE_MULTI_RETURN`), when reported (6.6+).
    pub retprobe: Option<bool>,
    /// The link's flags as the kernel reports them (6.6+): `BPF_F_KPROBE_MULTI_RETURN` (1)
    /// and any the kernel adds later. Per-function kprobes report the flags a kprobe_multi
    /// link of the same mode would have.
    pub flags: Option<u32>,
    /// Number of targets (6.6+).
    pub count: Option<u32>,
    /// Runs the kernel skipped because of recursion or a full probe pool (6.7+).
    pub missed: Option<u64>,
    /// The targets, sorted by address (6.6+; cookies 6.9+); per-function kprobes too (a
    /// target given by name only, address 0, comes first).
    pub targets: Vec<AttachedTarget>,
}

impl KprobeMultiInfo {
    /// Fills in each target's function and module from `/proc/kallsyms` (one read of it,
    /// a few hundred milliseconds under emulation), matching an address to the symbol at or
    /// just below it, since patch-site addresses sit a few bytes past the symbol.
    pub fn resolve_names(&mut self) -> io::Result<()> {
        let kallsyms = Kallsyms::read()?;
        let addrs: Vec<u64> = self.targets.iter().map(|t| t.address).collect();
        for (t, found) in self.targets.iter_mut().zip(kallsyms.symbolize(&addrs, 64)) {
            if let Some((function, module)) = found {
                t.function = Some(function);
                t.module = module;
            }
        }
        Ok(())
    }
}

impl KprobeMultiLink {
    /// A kprobe_multi attachment: usually one link, several when the kernel needed the set
    /// split; `skipped` indexes `plan.functions`.
    pub(crate) fn new(links: Vec<Link>, plan: Plan, mode: Mode, skipped: Vec<usize>) -> KprobeMultiLink {
        Self::build(links, AttachMode::KprobeMulti, plan, mode, skipped)
    }

    /// Adds per-function kprobes for functions kprobe_multi refused: `(link, index in the
    /// plan's functions, reason)`. The functions stay in [`Self::functions`].
    pub(crate) fn with_kprobes(mut self, kprobes: Vec<(Link, Function, Option<u64>, String)>) -> KprobeMultiLink {
        for (link, function, cookie, reason) in kprobes {
            self.kprobe_links.push(link);
            self.kprobe_only.push(KprobeOnly { function, cookie, reason });
        }
        self
    }

    /// One perf-event kprobe per function (the fallback); `skipped` indexes `plan.functions`.
    pub(crate) fn from_kprobes(links: Vec<Link>, plan: Plan, mode: Mode, skipped: Vec<usize>) -> KprobeMultiLink {
        Self::build(links, AttachMode::PerFunctionKprobes, plan, mode, skipped)
    }

    fn build(
        links: Vec<Link>,
        attach_mode: AttachMode,
        plan: Plan,
        mode: Mode,
        skipped: Vec<usize>,
    ) -> KprobeMultiLink {
        let mut keep = vec![true; plan.functions.len()];
        for &i in &skipped {
            keep[i] = false;
        }
        let skipped_functions = skipped.iter().map(|&i| plan.functions[i].clone()).collect();
        let functions = plan.functions.into_iter().zip(&keep).filter(|(_, k)| **k).map(|(f, _)| f).collect();
        let cookies = plan.cookies.map(|c| c.into_iter().zip(&keep).filter(|(_, k)| **k).map(|(c, _)| c).collect());
        KprobeMultiLink {
            links,
            attach_mode,
            mode,
            functions,
            cookies,
            skipped: skipped_functions,
            kprobe_links: Vec::new(),
            kprobe_only: Vec::new(),
        }
    }

    /// Functions the kernel refused and [`super::KprobeMulti::skip_rejected`] left out.
    pub fn skipped(&self) -> &[Function] {
        &self.skipped
    }

    /// Functions attached by their own kprobe next to the kprobe_multi link, with the reason
    /// ([`super::KprobeMulti::kprobe_refused`]); empty under the whole-set fallback, where
    /// every function has its own kprobe ([`AttachMode::PerFunctionKprobes`]).
    pub fn kprobe_only(&self) -> &[KprobeOnly] {
        &self.kprobe_only
    }

    /// Whether one kprobe_multi link or per-function kprobes carry the attachment.
    pub fn attach_mode(&self) -> AttachMode {
        self.attach_mode
    }

    /// Entry, return or session.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The functions asked for, in the order given: with name, module and listed address for
    /// a pattern; the name for symbols; the address for addresses.
    pub fn functions(&self) -> &[Function] {
        &self.functions
    }

    /// The cookies given, in target order.
    pub fn cookies(&self) -> Option<&[u64]> {
        self.cookies.as_deref()
    }

    /// The underlying links: one for a kprobe_multi link, one per function for kprobes.
    pub fn links(&self) -> &[Link] {
        &self.links
    }

    /// Pins the kprobe_multi link at `path`, so it stays attached after the process exits.
    /// Per-function kprobes cannot be pinned as one, nor a link with [`Self::kprobe_only`]
    /// functions (the pin would leave them out).
    pub fn pin(&self, path: impl AsRef<Path>) -> Result<(), PinError> {
        match (self.attach_mode, self.links.first()) {
            (AttachMode::KprobeMulti, Some(l)) if self.kprobe_only.is_empty() => l.pin(path),
            _ => Err(PinError {
                path: path.as_ref().display().to_string(),
                source: io::Error::new(io::ErrorKind::Unsupported, "per-function kprobes cannot be pinned as one link"),
            }),
        }
    }

    /// Opens a kprobe_multi link pinned at `path`.
    pub fn from_pin(path: impl AsRef<Path>) -> io::Result<KprobeMultiLink> {
        let link = Link::from_pin(path)?;
        let raw = sys::link_info(link.fd(), None, None)?;
        if raw.link_type != sys::link_type::KPROBE_MULTI {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "the pinned link is not a kprobe_multi link"));
        }
        let mode = if raw.kmulti_flags & sys::KPROBE_MULTI_RETURN != 0 { Mode::Return } else { Mode::Entry };
        Ok(KprobeMultiLink {
            links: vec![link],
            attach_mode: AttachMode::KprobeMulti,
            mode,
            functions: Vec::new(),
            cookies: None,
            skipped: Vec::new(),
            kprobe_links: Vec::new(),
            kprobe_only: Vec::new(),
        })
    }

    /// Asks the kernel what is attached. How much it says depends on the kernel: before 6.6
    /// only ids; addresses and flags since 6.6, the missed counter since 6.7, cookies since
    /// 6.9. Function names are not filled in (see [`KprobeMultiInfo::resolve_names`]).
    /// When the kernel needed the set split over several links, `id` is the first link's and
    /// counts and targets add up every link's. Per-function kprobes report what was attached,
    /// and so do the [`Self::kprobe_only`] functions, among the link's targets.
    pub fn info(&self) -> io::Result<KprobeMultiInfo> {
        if self.attach_mode == AttachMode::PerFunctionKprobes {
            return Ok(self.kprobes_info());
        }
        let level = features::kprobe_multi_link_info();
        let mut total: Option<KprobeMultiInfo> = None;
        if self.links.is_empty()
            && let Some(first) = self.kprobe_links.first()
        {
            // Only kprobes: ids from the first, the rest as a link with no targets reports.
            let i = first.info()?;
            let known = level >= LinkInfoLevel::Targets;
            total = Some(KprobeMultiInfo {
                id: i.id,
                prog_id: i.prog_id,
                retprobe: known.then_some(self.mode == Mode::Return),
                flags: known.then_some(if self.mode == Mode::Return { sys::KPROBE_MULTI_RETURN } else { 0 }),
                count: known.then_some(0),
                missed: (level >= LinkInfoLevel::Missed).then_some(0),
                targets: Vec::new(),
            });
        }
        for link in &self.links {
            let one = link_info(link, level)?;
            total = Some(match total {
                None => one,
                Some(mut t) => {
                    t.count = t.count.zip(one.count).map(|(a, b)| a + b);
                    t.missed = t.missed.zip(one.missed).map(|(a, b)| a + b);
                    t.targets.extend(one.targets);
                    t
                }
            });
        }
        let mut info = total.ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no link"))?;
        if level >= LinkInfoLevel::Targets {
            info.count = info.count.map(|c| c + self.kprobe_only.len() as u32);
            info.targets.extend(self.kprobe_only.iter().map(|k| AttachedTarget {
                address: k.function.address,
                cookie: (level >= LinkInfoLevel::Cookies).then_some(k.cookie.unwrap_or(0)),
                function: (!k.function.name.is_empty()).then(|| k.function.name.clone()),
                module: k.function.module.clone(),
            }));
        }
        info.targets.sort_by_key(|t| t.address);
        Ok(info)
    }

    fn kprobes_info(&self) -> KprobeMultiInfo {
        let (id, prog_id) = self.links.first().and_then(|l| l.info().ok()).map_or((0, 0), |i| (i.id, i.prog_id));
        let mut targets: Vec<AttachedTarget> = self
            .functions
            .iter()
            .enumerate()
            .map(|(i, f)| AttachedTarget {
                address: f.address,
                cookie: self.cookies.as_ref().and_then(|c| c.get(i).copied()),
                function: (!f.name.is_empty()).then(|| f.name.clone()),
                module: f.module.clone(),
            })
            .collect();
        // As the kernel sorts a kprobe_multi link's addresses (stable: copies keep their order).
        targets.sort_by_key(|t| t.address);
        KprobeMultiInfo {
            id,
            prog_id,
            retprobe: Some(self.mode == Mode::Return),
            flags: Some(if self.mode == Mode::Return { sys::KPROBE_MULTI_RETURN } else { 0 }),
            count: Some(self.functions.len() as u32),
            missed: None,
            targets,
        }
    }

    /// The type of the underlying link(s).
    pub fn link_type(&self) -> LinkType {
        match self.attach_mode {
            AttachMode::KprobeMulti => LinkType::KprobeMulti,
            AttachMode::PerFunctionKprobes => LinkType::PerfEvent,
        }
    }
}

/// What the kernel reports about one kprobe_multi link.
fn link_info(link: &Link, level: LinkInfoLevel) -> io::Result<KprobeMultiInfo> {
    let fd = link.fd();
    let first = sys::link_info(fd, None, None)?;
    let mut info = KprobeMultiInfo {
        id: first.id,
        prog_id: first.prog_id,
        retprobe: None,
        flags: None,
        count: None,
        missed: None,
        targets: Vec::new(),
    };
    if level < LinkInfoLevel::Targets || first.kmulti_count == 0 {
        return Ok(info);
    }
    let n = first.kmulti_count as usize;
    let mut addrs = vec![0u64; n];
    let mut cookies = vec![0u64; n];
    let want_cookies = level >= LinkInfoLevel::Cookies;
    let full = sys::link_info(fd, Some(&mut addrs), want_cookies.then_some(&mut cookies[..]))?;
    info.retprobe = Some(full.kmulti_flags & sys::KPROBE_MULTI_RETURN != 0);
    info.flags = Some(full.kmulti_flags);
    info.count = Some(full.kmulti_count);
    info.missed = (level >= LinkInfoLevel::Missed).then_some(full.kmulti_missed);
    info.targets = addrs
        .iter()
        .zip(&cookies)
        .map(|(&address, &cookie)| AttachedTarget {
            address,
            cookie: want_cookies.then_some(cookie),
            function: None,
            module: None,
        })
        .collect();
    Ok(info)
}
