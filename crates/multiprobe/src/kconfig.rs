//! Values of `.kconfig` externs, as libbpf's `bpf_object__resolve_externs` finds them:
//! `CONFIG_*` from the kernel's config (lines given with
//! [`OpenOptions::kconfig`](crate::object::OpenOptions::kconfig) first, then
//! `/boot/config-$(uname -r)`, then `/proc/config.gz`, gzipped or not), and libbpf's virtual
//! `LINUX_*` externs: `LINUX_KERNEL_VERSION` (with libbpf's Ubuntu and Debian quirks),
//! `LINUX_HAS_BPF_COOKIE` and `LINUX_HAS_SYSCALL_WRAPPER` from probes. A missing `__weak`
//! extern is 0; a missing strong one is an error naming it.

use std::io::Read;

use crate::btf::kconfig::{KconfigType, KconfigVar};
use crate::error::KconfigError;
use crate::features;
use crate::object::KconfigExtern;

/// The bytes of the `.kconfig` map: every extern's value at its place; and a warning when
/// no kernel config could be read, so that `__weak` `CONFIG_*` externs read 0.
pub(crate) fn values(
    externs: &[KconfigExtern],
    extra: Option<&str>,
    size: usize,
) -> Result<(Vec<u8>, Option<String>), KconfigError> {
    let mut data = vec![0u8; size];
    let mut set = vec![false; externs.len()];
    let mut need_config = false;
    for (i, ext) in externs.iter().enumerate() {
        let name = ext.var.name.as_str();
        if name.starts_with("CONFIG_") {
            need_config = true;
            continue;
        }
        let value = match name {
            "LINUX_KERNEL_VERSION" => u64::from(kernel_version().ok_or_else(|| KconfigError {
                name: name.into(),
                reason: "cannot read the kernel version from /proc/sys/kernel/osrelease".into(),
            })?),
            "LINUX_HAS_BPF_COOKIE" => u64::from(features::bpf_cookie().is_yes()),
            "LINUX_HAS_SYSCALL_WRAPPER" => u64::from(has_syscall_wrapper()),
            _ if name.starts_with("LINUX_") && ext.weak => 0,
            _ => {
                return Err(KconfigError {
                    name: name.into(),
                    reason: "unknown: kconfig externs are CONFIG_* values, LINUX_KERNEL_VERSION, \
                             LINUX_HAS_BPF_COOKIE and LINUX_HAS_SYSCALL_WRAPPER (other LINUX_* ones only __weak)"
                        .into(),
                });
            }
        };
        set_num(&ext.var, &mut data, value)?;
        set[i] = true;
    }
    if need_config && let Some(extra) = extra {
        apply_config(extra, externs, &mut data, &mut set)?;
        need_config = externs.iter().zip(&set).any(|(e, s)| !s && e.var.name.starts_with("CONFIG_"));
    }
    let mut warning = None;
    if need_config {
        match read_system_config() {
            Some((path, text)) => apply_config(&text, externs, &mut data, &mut set)
                .map_err(|e| KconfigError { reason: format!("{} (in {path})", e.reason), ..e })?,
            // libbpf fails here even when every extern left is __weak; reading them as 0
            // (what __weak promises) and saying so is kinder, and a strong one still fails.
            None => {
                let missing = format!(
                    "no kernel config to read it from: neither /boot/config-{} nor /proc/config.gz can be read \
                     (give the config with OpenOptions::kconfig)",
                    features::kernel_release()
                );
                if let Some((ext, _)) = externs.iter().zip(&set).find(|(e, s)| !**s && !e.weak) {
                    return Err(KconfigError { name: ext.var.name.clone(), reason: missing });
                }
                warning = Some(format!("__weak kconfig externs read 0: {missing}"));
            }
        }
    }
    match externs.iter().zip(&set).find(|(e, s)| !**s && !e.weak) {
        Some((ext, _)) => Err(KconfigError {
            name: ext.var.name.clone(),
            reason: "not set in the kernel config (declare it __weak to read 0 instead)".into(),
        }),
        None => Ok((data, warning)),
    }
}

/// libbpf's `bpf_object__process_kconfig_line` over every line: `CONFIG_X=VALUE` lines set
/// the externs not yet set; other lines (comments, `# CONFIG_X is not set`) are skipped.
fn apply_config(text: &str, externs: &[KconfigExtern], data: &mut [u8], set: &mut [bool]) -> Result<(), KconfigError> {
    for line in text.lines() {
        if !line.starts_with("CONFIG_") {
            continue;
        }
        let Some((name, value)) = line.split_once('=') else {
            return Err(KconfigError { name: line.into(), reason: format!("line `{line}` has no `=`") });
        };
        if value.is_empty() {
            return Err(KconfigError { name: name.into(), reason: format!("line `{line}` has no value") });
        }
        let Some(i) = externs.iter().position(|e| e.var.name == name) else { continue };
        if set[i] {
            continue;
        }
        let var = &externs[i].var;
        let bad = |reason: String| KconfigError { name: name.into(), reason };
        match value.as_bytes()[0] {
            c @ (b'y' | b'n' | b'm') => set_tristate(var, data, c).map_err(bad)?,
            b'"' => set_string(var, data, value).map_err(bad)?,
            _ => {
                let num = parse_u64(value).ok_or_else(|| bad(format!("value `{value}` is not a valid integer")))?;
                if !matches!(var.ty, KconfigType::Int { .. } | KconfigType::Char) {
                    return Err(bad(format!("value `{value}` is an integer, the extern is {:?}", var.ty)));
                }
                set_num(var, data, num)?;
            }
        }
        set[i] = true;
    }
    Ok(())
}

fn slot<'a>(var: &KconfigVar, data: &'a mut [u8]) -> &'a mut [u8] {
    &mut data[var.offset as usize..(var.offset + var.size) as usize]
}

/// libbpf's `set_kcfg_value_tri`.
fn set_tristate(var: &KconfigVar, data: &mut [u8], c: u8) -> Result<(), String> {
    let value: u64 = match (var.ty, c) {
        (KconfigType::Bool, b'm') => return Err("value `m` is a tristate, the extern is a bool".into()),
        (KconfigType::Bool, c) => u64::from(c == b'y'),
        (KconfigType::Tristate, b'y') => 1,
        (KconfigType::Tristate, b'm') => 2,
        (KconfigType::Tristate, _) => 0,
        (KconfigType::Char, c) => u64::from(c),
        (ty, c) => return Err(format!("value `{}` is a bool, tristate or char, the extern is {ty:?}", c as char)),
    };
    let bytes = value.to_le_bytes();
    let out = slot(var, data);
    let n = out.len();
    out.copy_from_slice(&bytes[..n]);
    Ok(())
}

/// libbpf's `set_kcfg_value_str`: a quoted string into a char array, cut to fit.
fn set_string(var: &KconfigVar, data: &mut [u8], value: &str) -> Result<(), String> {
    if var.ty != KconfigType::CharArray {
        return Err(format!("value {value} is a string, the extern is {:?}", var.ty));
    }
    let inner = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .ok_or_else(|| format!("value {value} is not a well-formed string"))?;
    let out = slot(var, data);
    let n = inner.len().min(out.len() - 1);
    out[..n].copy_from_slice(&inner.as_bytes()[..n]);
    out[n..].fill(0);
    Ok(())
}

/// libbpf's `set_kcfg_value_num`, with its range check.
fn set_num(var: &KconfigVar, data: &mut [u8], value: u64) -> Result<(), KconfigError> {
    let bad = |reason: String| KconfigError { name: var.name.clone(), reason };
    match var.ty {
        KconfigType::Bool if value > 1 => return Err(bad(format!("value {value} does not fit a bool"))),
        KconfigType::Int { .. } | KconfigType::Char | KconfigType::Bool => {}
        ty => return Err(bad(format!("value {value} is a number, the extern is {ty:?}"))),
    }
    let bits = var.size * 8;
    let in_range = bits >= 64
        || match var.ty {
            KconfigType::Int { signed: true } => value.wrapping_add(1 << (bits - 1)) < (1 << bits),
            _ => value >> bits == 0,
        };
    if !in_range {
        return Err(bad(format!("value {value:#x} does not fit in {} bytes", var.size)));
    }
    let bytes = value.to_le_bytes();
    let out = slot(var, data);
    let n = out.len();
    out.copy_from_slice(&bytes[..n]);
    Ok(())
}

/// `strtoull(value, &end, 0)` consuming everything: decimal, `0x` hex or `0` octal.
fn parse_u64(value: &str) -> Option<u64> {
    if let Some(hex) = value.strip_prefix("0x").or_else(|| value.strip_prefix("0X")) {
        u64::from_str_radix(hex, 16).ok()
    } else if value.len() > 1 && value.starts_with('0') {
        u64::from_str_radix(&value[1..], 8).ok()
    } else if let Some(neg) = value.strip_prefix('-') {
        neg.parse::<u64>().ok().map(u64::wrapping_neg)
    } else {
        value.parse().ok()
    }
}

/// The system's kernel config, where libbpf looks for it, gunzipped if it is compressed.
fn read_system_config() -> Option<(String, String)> {
    let boot = format!("/boot/config-{}", features::kernel_release());
    [boot.as_str(), "/proc/config.gz"].into_iter().find_map(|path| Some((path.to_string(), read_maybe_gz(path)?)))
}

fn read_maybe_gz(path: &str) -> Option<String> {
    let bytes = std::fs::read(path).ok()?;
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut text = String::new();
        flate2::read::GzDecoder::new(&bytes[..]).read_to_string(&mut text).ok()?;
        Some(text)
    } else {
        String::from_utf8(bytes).ok()
    }
}

/// `KERNEL_VERSION(a, b, c)` of bpf_helpers.h: the patch level saturates at 255.
fn kernel_version_code(major: u32, minor: u32, patch: u32) -> u32 {
    (major << 16) + (minor << 8) + patch.min(255)
}

/// libbpf's `get_kernel_version`: Ubuntu's `/proc/version_signature`, else Debian's version
/// in `uname -v` (its release string says `6.1.0-18`, the code it was built from
/// `6.1.76`), else the release.
fn kernel_version() -> Option<u32> {
    let ubuntu = std::fs::read_to_string("/proc/version_signature").ok();
    let uname_v = std::fs::read_to_string("/proc/sys/kernel/version").unwrap_or_default();
    let release = features::kernel_release();
    version_from(ubuntu.as_deref(), &uname_v, &release)
}

fn version_from(ubuntu_signature: Option<&str>, uname_v: &str, release: &str) -> Option<u32> {
    // "Ubuntu 5.15.0-91.101-generic 5.15.131": the third field.
    if let Some(v) = ubuntu_signature.and_then(|s| s.split_whitespace().nth(2)).and_then(three_numbers) {
        return Some(v);
    }
    // "#1 SMP PREEMPT_DYNAMIC Debian 6.1.76-1 (2024-02-01)".
    if let Some(at) = uname_v.find("Debian ") {
        if let Some(v) = three_numbers(&uname_v[at + "Debian ".len()..]) {
            return Some(v);
        }
    }
    three_numbers(release)
}

/// `sscanf(s, "%u.%u.%u")`.
fn three_numbers(s: &str) -> Option<u32> {
    let mut parts = s.splitn(3, '.');
    let mut num = |last: bool| -> Option<u32> {
        let p = parts.next()?;
        let digits: &str = if last { &p[..p.find(|c: char| !c.is_ascii_digit()).unwrap_or(p.len())] } else { p };
        digits.parse().ok()
    };
    let (a, b, c) = (num(false)?, num(false)?, num(true)?);
    Some(kernel_version_code(a, b, c))
}

/// libbpf probes for the syscall wrapper by opening a kprobe on `__<arch>_sys_bpf`; the
/// same question without a kprobe: does the kernel have that function. Asked of the
/// kernel's BTF first, parsed once per process and needed anyway by the CO-RE relocations
/// that `BPF_KSYSCALL` programs, the users of this extern, carry: reading `/proc/kallsyms`
/// instead made libbpf-bootstrap's ksyscall object load 3.6-6.6x slower than with libbpf
/// in the test VMs. kallsyms stays the answer where BTF is missing or lacks the wrapper.
fn has_syscall_wrapper() -> bool {
    let prefix = crate::symbols::SYSCALL_PREFIX;
    if prefix.is_empty() {
        return false;
    }
    let wrapper = format!("{prefix}sys_bpf");
    if crate::btf::kernel::vmlinux().is_ok_and(|btf| btf.find_by_name_kind(&wrapper, crate::btf::kind::FUNC).is_some())
    {
        return true;
    }
    let needle = format!(" {wrapper}\n");
    std::fs::read("/proc/kallsyms").is_ok_and(|k| memchr::memmem::find(&k, needle.as_bytes()).is_some())
}

#[cfg(test)]
mod tests {
    #[test]
    fn syscall_wrapper_found_in_btf_agrees_with_kallsyms() {
        let Ok(kallsyms) = std::fs::read("/proc/kallsyms") else { return };
        let needle = format!(" {}sys_bpf\n", crate::symbols::SYSCALL_PREFIX);
        let listed =
            !crate::symbols::SYSCALL_PREFIX.is_empty() && memchr::memmem::find(&kallsyms, needle.as_bytes()).is_some();
        assert_eq!(super::has_syscall_wrapper(), listed);
    }

    use super::*;

    fn ext(name: &str, offset: u32, size: u32, ty: KconfigType, weak: bool) -> KconfigExtern {
        KconfigExtern { var: KconfigVar { name: name.into(), offset, size, ty }, weak }
    }

    #[test]
    fn config_values_of_every_type() {
        let externs = [
            ext("CONFIG_HZ", 0, 4, KconfigType::Int { signed: false }, false),
            ext("CONFIG_BPF", 4, 1, KconfigType::Bool, false),
            ext("CONFIG_EXT4_FS", 5, 1, KconfigType::Char, false),
            ext("CONFIG_BTRFS_FS", 8, 4, KconfigType::Tristate, false),
            ext("CONFIG_LOCALVERSION", 12, 8, KconfigType::CharArray, false),
            ext("CONFIG_MISSING", 20, 4, KconfigType::Int { signed: true }, true),
            ext("CONFIG_NEG", 24, 8, KconfigType::Int { signed: true }, false),
        ];
        let config = "# comment\nCONFIG_HZ=0x3e8\nCONFIG_BPF=y\nCONFIG_EXT4_FS=m\nCONFIG_BTRFS_FS=m\n\
                      CONFIG_LOCALVERSION=\"-a-long-name\"\n# CONFIG_MISSING is not set\nCONFIG_NEG=-5\n";
        let (data, _) = values(&externs, Some(config), 32).unwrap();
        assert_eq!(u32::from_le_bytes(data[0..4].try_into().unwrap()), 1000);
        assert_eq!(data[4], 1);
        assert_eq!(data[5], b'm');
        assert_eq!(u32::from_le_bytes(data[8..12].try_into().unwrap()), 2);
        assert_eq!(&data[12..20], b"-a-long\0");
        assert_eq!(&data[20..24], &[0; 4]);
        assert_eq!(i64::from_le_bytes(data[24..32].try_into().unwrap()), -5);
    }

    #[test]
    fn a_missing_strong_extern_is_named() {
        let externs = [ext("CONFIG_NOT_THERE", 0, 1, KconfigType::Bool, false)];
        let err = values(&externs, Some("CONFIG_OTHER=y\n"), 1).unwrap_err();
        assert_eq!(err.name, "CONFIG_NOT_THERE");
        // Not in the lines given, so the system's config is read: where there is one, it
        // lacks the option; where there is none (the VMs), that is the reason.
        assert!(err.reason.contains("__weak") || err.reason.contains("OpenOptions::kconfig"), "{err}");
    }

    #[test]
    fn values_of_the_wrong_type_are_refused() {
        let bool_ext = [ext("CONFIG_X", 0, 1, KconfigType::Bool, false)];
        assert!(values(&bool_ext, Some("CONFIG_X=m\n"), 1).unwrap_err().reason.contains("tristate"));
        assert!(values(&bool_ext, Some("CONFIG_X=\"s\"\n"), 1).unwrap_err().reason.contains("string"));
        let byte = [ext("CONFIG_X", 0, 2, KconfigType::Int { signed: false }, false)];
        assert!(values(&byte, Some("CONFIG_X=70000\n"), 2).unwrap_err().reason.contains("does not fit"));
        assert!(values(&byte, Some("CONFIG_X=12ab\n"), 2).unwrap_err().reason.contains("not a valid integer"));
    }

    #[test]
    fn unknown_linux_externs_are_zero_only_when_weak() {
        let weak = [ext("LINUX_SOMETHING", 0, 4, KconfigType::Int { signed: false }, true)];
        assert_eq!(values(&weak, None, 4).unwrap().0, vec![0; 4]);
        let strong = [ext("LINUX_SOMETHING", 0, 4, KconfigType::Int { signed: false }, false)];
        assert!(values(&strong, None, 4).is_err());
        let other = [ext("MY_VALUE", 0, 4, KconfigType::Int { signed: false }, true)];
        assert!(values(&other, None, 4).is_err());
    }

    #[test]
    fn kernel_versions_with_libbpfs_distribution_quirks() {
        let v = |a, b, c| kernel_version_code(a, b, c);
        assert_eq!(
            version_from(None, "#1 SMP PREEMPT_DYNAMIC Debian 6.1.76-1 (2024-02-01)", "6.1.0-18-amd64"),
            Some(v(6, 1, 76))
        );
        assert_eq!(
            version_from(Some("Ubuntu 5.15.0-91.101-generic 5.15.131\n"), "#101-Ubuntu SMP", "5.15.0-91-generic"),
            Some(v(5, 15, 131))
        );
        assert_eq!(version_from(None, "#1 SMP", "6.18.44-fc-v1272"), Some(v(6, 18, 44)));
        assert_eq!(version_from(None, "#1 SMP", "4.19.300"), Some(v(4, 19, 255)));
        assert_eq!(version_from(None, "#1 SMP", "garbage"), None);
    }
}
