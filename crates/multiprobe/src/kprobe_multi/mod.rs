//! Attaching one program to many kernel functions with one kprobe_multi link.
//!
//! The spec is libbpf's `bpf_program__attach_kprobe_multi_opts`: targets by glob pattern, by
//! symbol list or by address list; optional cookies, one per target; entry, return or session
//! mode; `unique_match` for patterns. [`KprobeMulti`] makes the combinations libbpf rejects
//! at run time impossible to build; [`KprobeMultiOpts`] mirrors libbpf's struct field for
//! field, for code ported from C, and rejects them in libbpf's order with libbpf's errno.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use multiprobe::kprobe_multi::KprobeMulti;
//! let obj = multiprobe::Object::open("bpf/count.bpf.o")?.load()?;
//! let prog = obj.program("count_calls").unwrap();
//! // Every traceable function whose name starts with vfs_, at entry.
//! let link = prog.attach_kprobe_multi(&KprobeMulti::pattern("vfs_*"))?;
//! // Two functions by name, at return, each with its own cookie.
//! let link2 = prog.attach_kprobe_multi(
//!     &KprobeMulti::symbols_with_cookies([("vfs_read", 1), ("vfs_write", 2)]).retprobe(),
//! )?;
//! # Ok(()) }
//! ```
//!
//! Which functions exist and what patterns select comes from [`crate::symbols`]; this module
//! holds what to attach (here and `opts.rs`), resolution and checks (`plan.rs`), link
//! creation and diagnosis (`attach.rs`), splitting and bisection (`split.rs`), the
//! per-function fallback (`fallback.rs`) and the link (`link.rs`).

pub(crate) mod attach;
mod cancel;
mod fallback;
mod link;
pub(crate) mod opts;
mod plan;
mod split;

pub use link::{AttachMode, AttachedTarget, KprobeMultiInfo, KprobeMultiLink, KprobeOnly};
pub use opts::KprobeMultiOpts;
pub use split::Rejected;

use crate::symbols::{Function, Glob, Listing, Selection};

/// When the program runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// At function entry (`kprobe.multi`).
    #[default]
    Entry,
    /// At function return (`kretprobe.multi`).
    Return,
    /// At entry and at return of each call, sharing a per-call cookie; the entry's return
    /// value decides whether the return run happens (`kprobe.session`, kernel 6.10+).
    Session,
}

/// Which functions to attach to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Targets {
    /// Every traceable function whose name matches the glob.
    Pattern(Glob),
    /// Exactly one traceable function matching the glob, or an error (`unique_match`).
    UniquePattern(Glob),
    /// Functions by name; the kernel attaches the first traceable function of each name.
    Symbols(Vec<String>),
    /// Functions by address (symbol addresses, or ftrace patch sites).
    Addresses(Vec<u64>),
    /// Functions matching several patterns, excludes and module filters.
    Selection(Selection),
    /// Functions already resolved (from [`crate::symbols::TraceableFunctions`] or [`Selection::resolve`]):
    /// every copy of a duplicated name stays distinct, each with its own cookie.
    Functions(Vec<Function>),
}

/// What to do where the kernel cannot create kprobe_multi links (built without
/// CONFIG_FPROBE, or older than 5.18).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fallback {
    /// Fail with [`crate::AttachError::NotSupported`], like libbpf.
    #[default]
    Never,
    /// Attach one perf-event kprobe per function instead (slower to attach, same program,
    /// same cookies); the link reports [`AttachMode::PerFunctionKprobes`].
    Auto,
    /// Always attach per-function kprobes.
    Always,
}

/// What to attach a kprobe_multi program to, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KprobeMulti {
    pub(crate) targets: Targets,
    /// One per symbol or address, in the same order; only lists carry cookies.
    pub(crate) cookies: Option<Vec<u64>>,
    pub(crate) mode: Mode,
    pub(crate) fallback: Fallback,
    pub(crate) rejected: Rejected,
    /// Functions kprobe_multi refuses get a per-function kprobe next to the link.
    pub(crate) kprobe_refused: bool,
    /// How the traceable functions are read (and where they are kept for the boot).
    pub(crate) listing: Listing,
    /// Polled between the kprobes of a per-function attach.
    pub(crate) cancel: Option<cancel::CancelFlag>,
}

impl KprobeMulti {
    fn new(targets: Targets, cookies: Option<Vec<u64>>) -> KprobeMulti {
        KprobeMulti {
            targets,
            cookies,
            mode: Mode::Entry,
            fallback: Fallback::Never,
            rejected: Rejected::Fail,
            kprobe_refused: false,
            listing: Listing::new(),
            cancel: None,
        }
    }

    /// Every traceable function matching a glob (`*` any run, `?` one character).
    pub fn pattern(pattern: &str) -> KprobeMulti {
        KprobeMulti::new(Targets::Pattern(Glob::new(pattern)), None)
    }

    /// The one traceable function matching a glob; more or fewer matches is an error. For
    /// functions whose name varies between builds: `try_to_wake_up*` finds
    /// `try_to_wake_up.llvm.123` as well.
    pub fn unique_pattern(pattern: &str) -> KprobeMulti {
        KprobeMulti::new(Targets::UniquePattern(Glob::new(pattern)), None)
    }

    /// Functions by name.
    pub fn symbols<S: Into<String>>(names: impl IntoIterator<Item = S>) -> KprobeMulti {
        KprobeMulti::new(Targets::Symbols(names.into_iter().map(Into::into).collect()), None)
    }

    /// Functions by name, each with the cookie `bpf_get_attach_cookie()` returns for it.
    pub fn symbols_with_cookies<S: Into<String>>(pairs: impl IntoIterator<Item = (S, u64)>) -> KprobeMulti {
        let (names, cookies): (Vec<String>, Vec<u64>) = pairs.into_iter().map(|(s, c)| (s.into(), c)).unzip();
        KprobeMulti::new(Targets::Symbols(names), Some(cookies))
    }

    /// Functions by address.
    pub fn addresses(addrs: impl IntoIterator<Item = u64>) -> KprobeMulti {
        KprobeMulti::new(Targets::Addresses(addrs.into_iter().collect()), None)
    }

    /// Functions by address, each with its cookie. Use symbol addresses (kallsyms) here:
    /// cookies are looked up by the function's entry address, which is not the ftrace patch
    /// site on kernels with IBT.
    pub fn addresses_with_cookies(pairs: impl IntoIterator<Item = (u64, u64)>) -> KprobeMulti {
        let (addrs, cookies) = pairs.into_iter().unzip();
        KprobeMulti::new(Targets::Addresses(addrs), Some(cookies))
    }

    /// Functions matching a [`Selection`]: several patterns, excludes, module filters.
    pub fn selection(selection: Selection) -> KprobeMulti {
        KprobeMulti::new(Targets::Selection(selection), None)
    }

    /// Functions already resolved: duplicated names attach every copy given.
    pub fn functions(functions: impl IntoIterator<Item = Function>) -> KprobeMulti {
        KprobeMulti::new(Targets::Functions(functions.into_iter().collect()), None)
    }

    /// Resolved functions, each with its cookie (e.g. its index in a table of counters).
    pub fn functions_with_cookies(pairs: impl IntoIterator<Item = (Function, u64)>) -> KprobeMulti {
        let (functions, cookies) = pairs.into_iter().unzip();
        KprobeMulti::new(Targets::Functions(functions), Some(cookies))
    }

    /// What to do on kernels without kprobe_multi links.
    pub fn fallback(mut self, fallback: Fallback) -> KprobeMulti {
        self.fallback = fallback;
        self
    }

    /// Attaches what the kernel accepts and skips the functions it refuses (found by
    /// bisection; listed by [`KprobeMultiLink::skipped`]) instead of failing.
    pub fn skip_rejected(mut self) -> KprobeMulti {
        self.rejected = Rejected::Skip;
        self
    }

    /// Attaches functions kprobe_multi cannot take by a perf-event kprobe each, next to the
    /// link: a function ftrace's listing lacks by that name (given by kallsyms address or by
    /// name, e.g. `__x64_sys_getppid` on Debian's 6.12, an alias ftrace lists under another
    /// name) goes to a kprobe at once; one the kernel refuses for the link (found by
    /// bisection, as for [`Self::skip_rejected`]) where a kprobe can go. The link lists them with the reason
    /// ([`KprobeMultiLink::kprobe_only`]), reports them in [`KprobeMultiLink::info`] and
    /// detaches them with the rest. Entry and return probes only: a refused target of a
    /// session stays refused. What a kprobe cannot take either is skipped or fails the
    /// attach as before.
    pub fn kprobe_refused(mut self) -> KprobeMulti {
        self.kprobe_refused = true;
        self
    }

    /// Reads the traceable functions (for patterns, selections, the checks of names, and
    /// entry addresses for cookies) as `listing` says, e.g. kept in a cache directory for the
    /// boot. The default, [`Listing::new`], keeps them in memory only.
    pub fn listing(mut self, listing: Listing) -> KprobeMulti {
        self.listing = listing;
        self
    }

    /// Gives up a per-function attach (the [`Fallback`]: one kprobe at a time, seconds for
    /// hundreds of functions) as soon as `flag` is set, for example by a SIGINT handler: the
    /// kprobes made so far are detached and the attach fails with
    /// [`crate::AttachError::Cancelled`]. A kprobe_multi link is one system call and is not
    /// interrupted.
    pub fn cancel_on(mut self, flag: std::sync::Arc<std::sync::atomic::AtomicBool>) -> KprobeMulti {
        self.cancel = Some(cancel::CancelFlag(flag));
        self
    }

    /// Runs the program at function return instead of entry.
    pub fn retprobe(self) -> KprobeMulti {
        self.with_mode(Mode::Return)
    }

    /// Runs the program at entry and return of each call (kernel 6.10+; the program must be
    /// loaded from a `kprobe.session` section).
    pub fn session(self) -> KprobeMulti {
        self.with_mode(Mode::Session)
    }

    /// Sets the mode.
    pub fn with_mode(mut self, mode: Mode) -> KprobeMulti {
        self.mode = mode;
        self
    }

    /// The targets.
    pub fn targets(&self) -> &Targets {
        &self.targets
    }

    /// The cookies, if any.
    pub fn cookies(&self) -> Option<&[u64]> {
        self.cookies.as_deref()
    }

    /// The mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }
}
