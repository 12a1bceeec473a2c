//! Objects as real tools ship them (bpf/test_tracing.bpf.c): a kprobe.multi program next to
//! fentry, fexit, tp_btf, lsm and iterator programs, a section name of the tool's own, maps
//! whose BTF the kernel refuses, a stack trace map sized before load, `.kconfig` externs and
//! a `__hidden` subprogram, loaded on this machine's kernel and in the VMs. Then
//! (bpf/test_attach.bpf.c, module `tracing_links`) every kind attached at once, each one's
//! hits counted exactly, links reporting their targets and detaching on drop.

#[macro_use]
mod common;

use multiprobe::{LoadError, Object, OpenOptions, ProgramKind, SectionHandler};
use testkit::{require_config, require_root};

const TRACING_OBJ: &[u8] = include_bytes!("../../../bpf/test_tracing.bpf.o");

/// BPF_PROG_TEST_RUN hands socket filters the packet past its 14-byte Ethernet header.
const ETH_HLEN: u32 = 14;
/// `enum bpf_prog_type` values the programs must load as.
const BPF_PROG_TYPE_KPROBE: u32 = 2;
const BPF_PROG_TYPE_TRACING: u32 = 26;
const BPF_PROG_TYPE_LSM: u32 = 29;

/// The kernel config under test (the VM's, or this machine's), as text.
fn kernel_config_text() -> Option<String> {
    use std::io::Read;
    if let Some(path) = std::env::var_os("MULTIPROBE_KERNEL_CONFIG") {
        return std::fs::read_to_string(path).ok();
    }
    let boot = format!("/boot/config-{}", testkit::kernel_release());
    if let Ok(text) = std::fs::read_to_string(&boot) {
        return Some(text);
    }
    let gz = std::fs::read("/proc/config.gz").ok()?;
    let mut text = String::new();
    flate2::read::GzDecoder::new(gz.as_slice()).read_to_string(&mut text).ok()?;
    Some(text)
}

/// Programs attached by BTF id (fentry, fexit, tp_btf, lsm, iter).
const TRACING_PROGRAMS: [&str; 5] = ["on_entry", "on_exit", "on_sys_enter", "on_file_open", "each_task"];

/// Whether this kernel lets root load fentry programs: the VMs' kernels do; this project's
/// build machines run a kernel that refuses them with EPERM (lockdown), which no kernel
/// version or config option names, so those tests run in the VMs only.
fn tracing_loads_here() -> bool {
    testkit::in_vm()
}

/// The object as a tool sets it up: the stack map's value size (depth 127), the fentry
/// placeholder retargeted, the kernel's config given (the VMs have no /boot/config-*),
/// the program of the tool's own section left out, LSM programs only where the kernel
/// has BPF LSM, programs attached by BTF id only where the kernel loads them.
fn tool_object() -> Object {
    let opts = match kernel_config_text() {
        Some(text) => OpenOptions::new().kconfig(text),
        None => OpenOptions::new(),
    };
    let mut obj = Object::parse_with("test_tracing", TRACING_OBJ, &opts).unwrap();
    obj.map_mut("stacks").unwrap().set_value_size(127 * 8);
    obj.program_mut("on_entry").unwrap().set_attach_target("vfs_read");
    obj.program_mut("custom_section").unwrap().set_autoload(false);
    let lsm = testkit::kernel_config("CONFIG_BPF_LSM").unwrap_or(false);
    obj.program_mut("on_file_open").unwrap().set_autoload(lsm);
    if !tracing_loads_here() {
        for p in TRACING_PROGRAMS {
            obj.program_mut(p).unwrap().set_autoload(false);
        }
    }
    obj
}

/// Named as a group, so that `--test-filter tools_object` picks them.
mod tools_object {
    use super::*;

    #[test]
    fn an_unknown_section_opens_and_only_loading_it_fails() {
        let mut obj = Object::parse("test_tracing", TRACING_OBJ).expect("an unknown section does not stop open");
        let custom = obj.program("custom_section").unwrap();
        assert_eq!((custom.kind(), custom.section_name()), (None, "mytool/vfs_read"));
        assert_eq!(obj.program("on_entry").unwrap().kind(), Some(ProgramKind::Fentry));
        assert_eq!(obj.program("on_file_open").unwrap().kind(), Some(ProgramKind::Lsm));
        // Checked before anything is created, so no privilege is needed to see it.
        for p in TRACING_PROGRAMS {
            obj.program_mut(p).unwrap().set_autoload(false);
        }
        let err = obj.load().unwrap_err();
        assert!(
            matches!(&err, LoadError::NoKind { program, section } if program == "custom_section" && section == "mytool/vfs_read"),
            "{err}"
        );
        assert!(err.to_string().contains("set_autoload(false)"), "{err}");
        // A fentry program whose target cannot be found names it.
        obj.program_mut("custom_section").unwrap().set_autoload(false);
        obj.program_mut("on_entry").unwrap().set_autoload(true).set_attach_target("multiprobe_no_such_function");
        let err = obj.load().unwrap_err();
        assert!(
            matches!(&err, LoadError::AttachTarget { program, target, .. } if program == "on_entry" && target == "multiprobe_no_such_function"),
            "{err}"
        );
    }

    #[test]
    fn the_tools_object_loads_with_every_program_kind() {
        require_root!("loading BPF programs");
        if !tracing_loads_here() {
            return;
        }
        let loaded = tool_object().load().unwrap_or_else(|e| panic!("{e}"));
        assert!(
            !loaded.warnings().iter().any(|w| w.contains("BTF")),
            "maps whose BTF the kernel refuses are created without it, without a retry: {:?}",
            loaded.warnings()
        );
        for (name, prog_type) in [
            ("multi_read", BPF_PROG_TYPE_KPROBE),
            ("on_entry", BPF_PROG_TYPE_TRACING),
            ("on_exit", BPF_PROG_TYPE_TRACING),
            ("on_sys_enter", BPF_PROG_TYPE_TRACING),
            ("each_task", BPF_PROG_TYPE_TRACING),
        ] {
            let prog = loaded.program(name).unwrap_or_else(|| panic!("{name} loaded"));
            assert_eq!(prog.info().unwrap().prog_type, prog_type, "{name}");
        }
        assert!(loaded.is_not_loaded("custom_section"));
        let stacks = loaded.map("stacks").unwrap();
        assert_eq!(stacks.value_size(), 127 * 8);
        assert_eq!(loaded.map("perf_events").unwrap().max_entries() as usize, multiprobe::map::possible_cpus());
    }

    #[test]
    fn a_hidden_subprogram_is_verified_with_its_callers_context_and_kconfig_is_read() {
        require_root!("loading BPF programs");
        let loaded = tool_object().load().unwrap_or_else(|e| panic!("{e}"));
        let packet = [0u8; 64];
        // read_kconfig returns packet_len(ctx): the hidden subprogram read the caller's skb.
        let run = loaded.program("read_kconfig").unwrap().test_run(&packet).unwrap();
        assert_eq!(run.retval, packet.len() as u32 - ETH_HLEN);

        let bss = loaded.map(".bss").unwrap().get_bytes(&0u32.to_le_bytes()).unwrap().unwrap();
        let word = |i: usize| u32::from_le_bytes(bss[i * 4..i * 4 + 4].try_into().unwrap());
        let (major, minor) = testkit::kernel_version();
        let version = word(0);
        assert_eq!((version >> 16, (version >> 8) & 0xff), (major, minor), "LINUX_KERNEL_VERSION {version:#x}");
        assert_eq!(word(1), 1, "LINUX_HAS_BPF_COOKIE on 5.15+");
        if cfg!(target_arch = "x86_64") {
            assert_eq!(word(2), 1, "LINUX_HAS_SYSCALL_WRAPPER (__x64_sys_bpf)");
        }
        assert_eq!(word(3), 1, "CONFIG_BPF_SYSCALL=y");
        assert_eq!(word(4), 0, "a weak extern the config lacks reads 0");
        let config = kernel_config_text().map(|t| testkit::KernelConfig::parse(&t));
        if let Some(config) = config {
            let hz: i32 = config.value("CONFIG_HZ").map_or(0, |v| v.parse().unwrap());
            assert_eq!(word(5) as i32, hz, "CONFIG_HZ");
            let localversion = config.value("CONFIG_LOCALVERSION").unwrap_or("\"\"").trim_matches('"');
            let seen = &bss[24..40];
            let end = seen.iter().position(|&b| b == 0).unwrap_or(15);
            assert_eq!(std::str::from_utf8(&seen[..end]).unwrap(), &localversion[..localversion.len().min(15)]);
        }
    }

    #[test]
    fn kconfig_lines_given_at_open_come_before_the_systems() {
        require_root!("loading BPF programs");
        let mut obj =
            Object::parse_with("test_tracing", TRACING_OBJ, &OpenOptions::new().kconfig("CONFIG_HZ=123\n")).unwrap();
        for p in TRACING_PROGRAMS.iter().chain(&["custom_section"]) {
            obj.program_mut(p).unwrap().set_autoload(false);
        }
        obj.map_mut("stacks").unwrap().set_value_size(8);
        // The other CONFIG_ externs are still looked up in the system's config; where there is
        // none (the VMs), the error says how to give one.
        match obj.load() {
            Ok(loaded) => {
                loaded.program("read_kconfig").unwrap().test_run(&[0u8; 64]).unwrap();
                let bss = loaded.map(".bss").unwrap().get_bytes(&0u32.to_le_bytes()).unwrap().unwrap();
                assert_eq!(i32::from_le_bytes(bss[20..24].try_into().unwrap()), 123, "CONFIG_HZ from the lines given");
            }
            Err(LoadError::Kconfig(e)) => assert!(e.reason.contains("OpenOptions::kconfig"), "{e}"),
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn a_section_name_of_ones_own_gives_the_kind() {
        require_root!("loading BPF programs");
        let opts = OpenOptions::new().section_handler(SectionHandler::new("mytool+", ProgramKind::Kprobe));
        let mut obj = Object::parse_with("test_tracing", TRACING_OBJ, &opts).unwrap();
        let custom = obj.program("custom_section").unwrap();
        assert_eq!((custom.kind(), custom.attach_target()), (Some(ProgramKind::Kprobe), Some("vfs_read")));
        for p in ["on_entry", "on_exit", "on_sys_enter", "on_file_open", "each_task", "read_kconfig"] {
            obj.program_mut(p).unwrap().set_autoload(false);
        }
        obj.map_mut("stacks").unwrap().set_value_size(8);
        let loaded = match obj.load() {
            Err(LoadError::Kconfig(_)) => return, // no kernel config on this machine: see the test above
            other => other.unwrap_or_else(|e| panic!("{e}")),
        };
        assert_eq!(loaded.program("custom_section").unwrap().info().unwrap().prog_type, BPF_PROG_TYPE_KPROBE);
    }

    #[test]
    fn lsm_programs_load_where_the_kernel_has_bpf_lsm() {
        require_root!("loading BPF programs");
        require_config!("CONFIG_BPF_LSM", "BPF LSM programs");
        if !tracing_loads_here() {
            return;
        }
        let mut obj = tool_object();
        obj.program_mut("on_file_open").unwrap().set_autoload(true);
        let loaded = obj.load().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(loaded.program("on_file_open").unwrap().info().unwrap().prog_type, BPF_PROG_TYPE_LSM);
    }

    #[test]
    fn fentry_targets_are_found_in_module_btf() {
        require_root!("loading BPF programs");
        require_config!("CONFIG_DEBUG_INFO_BTF_MODULES", "module BTF");
        // Needs the VM's test module (and a kernel that loads fentry programs).
        let Some(dir) = testkit::test_modules_dir() else { return };
        let sh = |cmd: &str| std::process::Command::new("sh").args(["-c", cmd]).status().unwrap().success();
        let _ = sh("umount /tmp/binfmt 2>/dev/null; rmmod binfmt_misc 2>/dev/null");
        assert!(sh(&format!("insmod {}", dir.join("binfmt_misc.ko").display())), "insmod binfmt_misc");
        for target in ["bm_status_read", "binfmt_misc:bm_status_read"] {
            let mut obj = tool_object();
            obj.program_mut("on_entry").unwrap().set_attach_target(target);
            let loaded = obj.load().unwrap_or_else(|e| panic!("{target}: {e}"));
            assert_eq!(loaded.program("on_entry").unwrap().info().unwrap().prog_type, BPF_PROG_TYPE_TRACING);
        }
        let mut obj = tool_object();
        obj.program_mut("on_entry").unwrap().set_attach_target("vmlinux:bm_status_read");
        assert!(matches!(obj.load(), Err(LoadError::AttachTarget { .. })));
        assert!(sh("rmmod binfmt_misc"));
    }
}

const ATTACH_OBJ: &[u8] = include_bytes!("../../../bpf/test_attach.bpf.o");

/// bpf/test_attach.bpf.c: one program of every kind, attached at once, each one's hits
/// counted exactly on a workload of this thread's own; links report their targets and
/// detach on drop. `--test-filter tracing` picks these.
mod tracing_links {
    use std::collections::BTreeSet;
    use std::os::fd::AsFd;
    use std::time::{Duration, Instant};

    use multiprobe::kprobe_multi::{Fallback, KprobeMulti};
    use multiprobe::raw::{self as sys, ObjKind};
    use multiprobe::{AttachError, Attachment, KprobeTarget, Link, LinkTarget, LinkType, LoadedObject};
    use testkit::require_kernel;

    use super::*;

    /// The programs counting into `state.hits`, in the order of its indexes.
    const COUNTERS: [&str; 11] = [
        "multi_open",
        "kprobe_open",
        "kretprobe_open",
        "ksyscall_openat",
        "tp_openat",
        "raw_sys_enter",
        "btf_sys_enter",
        "fentry_open",
        "fexit_open",
        "lsm_file_open",
        "fmod_ret_file_open",
    ];
    const OPENS: u64 = 20;
    /// `enum bpf_attach_type` values the tracing links report.
    const BPF_TRACE_FENTRY: u32 = 24;
    const BPF_TRACE_FEXIT: u32 = 25;
    const BPF_MODIFY_RETURN: u32 = 26;
    const BPF_LSM_MAC: u32 = 27;

    /// Skips where a kind of the object cannot attach; returns outside the VMs, whose
    /// kernels load tracing programs (see `tracing_loads_here`).
    macro_rules! require_every_kind {
        () => {
            require_root!("loading BPF programs");
            require_kernel!(5, 15, "perf-event links");
            require_config!("CONFIG_KPROBES", "single kprobes");
            require_config!("CONFIG_FTRACE_SYSCALLS", "syscall tracepoints");
            require_config!("CONFIG_BPF_LSM", "BPF LSM programs");
            if !tracing_loads_here() {
                return;
            }
        };
    }

    fn load() -> LoadedObject {
        Object::parse("test_attach", ATTACH_OBJ).unwrap().load().unwrap_or_else(|e| panic!("{e}"))
    }

    /// The object's `state`: who is counted, and the counts.
    fn set_counted(loaded: &LoadedObject, tid: u32, nr: u32) {
        let bss = loaded.map(".bss").unwrap();
        let mut state = bss.get_bytes(&0u32.to_le_bytes()).unwrap().unwrap();
        state[0..4].copy_from_slice(&tid.to_le_bytes());
        state[4..8].copy_from_slice(&nr.to_le_bytes());
        bss.update_bytes(&0u32.to_le_bytes(), &state, multiprobe::UpdateFlags::Any).unwrap();
    }

    fn hits(loaded: &LoadedObject) -> Vec<(&'static str, u64)> {
        let state = loaded.map(".bss").unwrap().get_bytes(&0u32.to_le_bytes()).unwrap().unwrap();
        COUNTERS
            .iter()
            .enumerate()
            .map(|(i, &name)| (name, u64::from_le_bytes(state[8 + i * 8..16 + i * 8].try_into().unwrap())))
            .collect()
    }

    /// `n` openat(2) calls of this thread (what `File::open` makes on Linux), each a
    /// successful open, so `file_open` runs too.
    fn opens(n: u64) {
        for _ in 0..n {
            drop(std::fs::File::open("/dev/null").unwrap());
        }
    }

    /// Counts this thread's opens while everything is attached; every program runs once
    /// per openat: the kernel makes no other calls to those functions in this thread.
    fn count_opens(loaded: &LoadedObject) {
        set_counted(loaded, common::gettid(), libc::SYS_openat as u32);
        opens(OPENS);
        set_counted(loaded, 0, 0);
        let got = hits(loaded);
        let want: Vec<_> = COUNTERS.iter().map(|&n| (n, OPENS)).collect();
        assert_eq!(got, want, "hits per program after {OPENS} openat calls of this thread");
    }

    /// Every BPF link of the kernel, by id.
    fn link_ids() -> BTreeSet<u32> {
        let mut out = BTreeSet::new();
        let mut id = 0;
        while let Ok(Some(next)) = sys::get_next_id(ObjKind::Link, id) {
            id = next;
            out.insert(id);
        }
        out
    }

    /// After the links are dropped: none is left in the kernel (their release may run a
    /// moment later, from a work queue), and the programs no longer count.
    fn check_detached(loaded: &LoadedObject, before: &BTreeSet<u32>) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while link_ids() != *before && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(link_ids(), *before, "links left after drop");
        let counted = hits(loaded);
        set_counted(loaded, common::gettid(), libc::SYS_openat as u32);
        opens(3);
        set_counted(loaded, 0, 0);
        assert_eq!(hits(loaded), counted, "a dropped link still runs its program");
    }

    /// The iterator ran over every task: this process and init among them.
    fn check_iter(iter: &multiprobe::IterLink) {
        let out = iter.read_all().unwrap();
        assert_eq!(out.len() % 4, 0, "{} bytes", out.len());
        let pids: BTreeSet<i32> = out.chunks(4).map(|c| i32::from_le_bytes(c.try_into().unwrap())).collect();
        assert!(pids.contains(&1) && pids.contains(&(std::process::id() as i32)), "{pids:?}");
        assert_eq!(iter.link().info().unwrap().link_type, LinkType::Iter);
        assert_eq!(iter.link().target().unwrap(), LinkTarget::Iter { name: "task".into() });
        // Each pass starts over.
        assert!(!iter.read_all().unwrap().is_empty());
    }

    #[test]
    fn tracing_links_of_every_kind_attached_at_once_count_exactly() {
        require_every_kind!();
        let loaded = load();
        let before = link_ids();
        let p = |name| loaded.program(name).unwrap();
        let func = || KprobeTarget::Symbol { name: "do_sys_openat2".into(), offset: 0 };
        // kprobe_multi where the kernel has it, one kprobe per function where not (6.1).
        let multi = p("multi_open")
            .attach_kprobe_multi(&KprobeMulti::pattern("do_sys_openat2").fallback(Fallback::Auto))
            .unwrap();
        let links: Vec<(&str, Link)> = vec![
            ("kprobe_open", p("kprobe_open").attach_kprobe(&func(), 0).unwrap()),
            ("kretprobe_open", p("kretprobe_open").attach_kprobe(&func(), 0).unwrap()),
            ("ksyscall_openat", p("ksyscall_openat").attach_ksyscall("openat", 0).unwrap()),
            ("tp_openat", p("tp_openat").attach_tracepoint("syscalls", "sys_enter_openat").unwrap()),
            ("raw_sys_enter", p("raw_sys_enter").attach_raw_tracepoint("sys_enter").unwrap()),
            ("btf_sys_enter", p("btf_sys_enter").attach_trace().unwrap()),
            ("fentry_open", p("fentry_open").attach_trace().unwrap()),
            ("fexit_open", p("fexit_open").attach_trace().unwrap()),
            ("lsm_file_open", p("lsm_file_open").attach_lsm().unwrap_or_else(|e| panic!("{e}"))),
            ("fmod_ret_file_open", p("fmod_ret_file_open").attach_trace().unwrap_or_else(|e| panic!("{e}"))),
        ];
        let iter = p("each_task_pid").attach_iter().unwrap();

        for (name, link) in &links {
            let info = link.info().unwrap();
            assert_eq!(info.prog_id, p(name).info().unwrap().id, "{name}");
            let target = link.target().unwrap();
            match *name {
                "kprobe_open" | "kretprobe_open" | "ksyscall_openat" | "tp_openat" => {
                    assert_eq!(info.link_type, LinkType::PerfEvent, "{name}");
                    assert!(link.event_fd().is_some(), "{name}");
                }
                "raw_sys_enter" | "btf_sys_enter" => {
                    assert_eq!(info.link_type, LinkType::RawTracepoint, "{name}");
                    assert_eq!(target, LinkTarget::RawTracepoint { name: "sys_enter".into() }, "{name}");
                }
                _ => {
                    assert_eq!(info.link_type, LinkType::Tracing, "{name}");
                    let want = match *name {
                        "fentry_open" => BPF_TRACE_FENTRY,
                        "fexit_open" => BPF_TRACE_FEXIT,
                        "fmod_ret_file_open" => BPF_MODIFY_RETURN,
                        _ => BPF_LSM_MAC,
                    };
                    let LinkTarget::Tracing { attach_type, target_obj_id, target_btf_id } = target else {
                        panic!("{name}: {target:?}")
                    };
                    assert_eq!(attach_type, want, "{name}");
                    assert!(target_obj_id != 0 && target_btf_id != 0, "{name}: {target:?}");
                }
            }
        }
        check_iter(&iter);
        count_opens(&loaded);

        drop((multi, links, iter));
        check_detached(&loaded, &before);
    }

    #[test]
    fn tracing_links_from_section_names_with_attach_all() {
        require_every_kind!();
        require_config!("CONFIG_FPROBE", "kprobe_multi links");
        let loaded = load();
        let before = link_ids();
        let attached = loaded.attach_all().unwrap_or_else(|e| panic!("{e}"));
        let mut names: Vec<&str> = attached.iter().map(|(n, _)| n.as_str()).collect();
        names.sort();
        let mut want: Vec<&str> = COUNTERS.iter().copied().chain(["each_task_pid"]).collect();
        want.sort();
        assert_eq!(names, want);
        for (name, a) in &attached {
            match a {
                Attachment::Iter(iter) => check_iter(iter),
                Attachment::KprobeMulti(m) => assert_eq!(m.links().len(), 1, "{name}: one kprobe_multi link"),
                Attachment::Link(l) => {
                    assert_eq!(l.info().unwrap().prog_id, loaded.program(name).unwrap().info().unwrap().id)
                }
            }
        }
        count_opens(&loaded);
        drop(attached);
        check_detached(&loaded, &before);
    }

    #[test]
    fn tracing_links_auto_attach_names_a_program_whose_section_has_no_target() {
        require_root!("loading BPF programs");
        let loaded = Object::parse("test_kprobe_multi", common::KPROBE_MULTI_OBJ).unwrap().load().unwrap();
        // SEC("kprobe") and SEC("kprobe.multi"): attachable kinds, no target to attach to.
        for (name, section) in [("plain", "kprobe"), ("entry", "kprobe.multi")] {
            let e = loaded.program(name).unwrap().attach().unwrap_err();
            assert!(
                matches!(&e, AttachError::NoSectionTarget { program, section: s } if program == name && s == section),
                "{name}: {e}"
            );
            assert!(e.to_string().contains(&format!("program `{name}`")), "{e}");
        }
        // attach_all leaves them out, as libbpf's skeleton does: nothing here names a target.
        assert!(loaded.attach_all().unwrap().is_empty());
    }

    #[test]
    fn tracing_links_refuse_the_wrong_kind_and_unknown_raw_tracepoints() {
        require_every_kind!();
        let loaded = load();
        let kprobe = loaded.program("kprobe_open").unwrap();
        for r in [kprobe.attach_trace(), kprobe.attach_lsm(), kprobe.attach_raw_tracepoint("sys_enter")] {
            let e = r.unwrap_err();
            assert!(matches!(&e, AttachError::WrongProgramKind { program, .. } if program == "kprobe_open"), "{e}");
        }
        assert!(matches!(kprobe.attach_iter(), Err(AttachError::WrongProgramKind { .. })));
        let fentry = loaded.program("fentry_open").unwrap();
        assert!(matches!(fentry.attach_lsm(), Err(AttachError::WrongProgramKind { .. })));
        let raw = loaded.program("raw_sys_enter").unwrap();
        for bad in ["multiprobe_no_such_tracepoint", "", "sys\0enter"] {
            let e = raw.attach_raw_tracepoint(bad).unwrap_err();
            assert!(
                matches!(&e, AttachError::UnknownRawTracepoint { tracepoint, .. } if tracepoint == bad),
                "{bad:?}: {e}"
            );
            assert!(e.to_string().contains("without its category"), "{e}");
        }
        let e = raw.attach_raw_tracepoint(&"x".repeat(4096)).unwrap_err();
        assert!(matches!(e, AttachError::UnknownRawTracepoint { .. }), "{e}");
        let ks = loaded.program("ksyscall_openat").unwrap();
        let e = ks.attach_ksyscall("multiprobe_no_such_syscall", 0).unwrap_err();
        assert!(e.to_string().contains("multiprobe_no_such_syscall"), "{e}");
        // A link's fd is its own: pinning works as for other links.
        let link = raw.attach_raw_tracepoint("sys_enter").unwrap();
        let pins = common::BpfDir::new("raw_tp");
        link.pin(pins.path("link")).unwrap();
        let pinned = Link::from_pin(pins.path("link")).unwrap();
        assert_eq!(pinned.info().unwrap().id, link.info().unwrap().id);
        let _ = pinned.as_fd();
    }
}
