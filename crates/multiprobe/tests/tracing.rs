//! Objects as real tools ship them (bpf/test_tracing.bpf.c): a kprobe.multi program next to
//! fentry, fexit, tp_btf, lsm and iterator programs, a section name of the tool's own, maps
//! whose BTF the kernel refuses, a stack trace map sized before load, `.kconfig` externs and
//! a `__hidden` subprogram, loaded on this machine's kernel and in the VMs.

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
