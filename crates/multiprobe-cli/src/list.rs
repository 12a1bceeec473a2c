//! `multiprobe list`: the traceable functions a set of patterns selects, with module and
//! address: what `count` and `latency` would attach to; with `-v`, each function's C
//! prototype from the kernel's BTF. Names given literally that only kprobes can probe (not in
//! ftrace's listing, but functions in kallsyms) come last, with the reason: `count` attaches
//! them by a kprobe each.

use clap::Args;
use multiprobe::symbols::{Function, Listing};
use serde::Serialize;

use crate::checked::Checked;
use crate::error::CliError;
use crate::output::{Output, hex_address};
use crate::select::{self, SelectArgs, module_name};

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Function patterns: NAME_GLOB, MODULE_GLOB:NAME_GLOB or vmlinux:NAME_GLOB (`*` any
    /// run, `?` one character). Default: every traceable function.
    #[arg(value_name = "PATTERN", value_parser = Checked(select::parse_pattern))]
    pub patterns: Vec<String>,
    #[command(flatten)]
    pub select: SelectArgs,
    /// One JSON object per line: each function, then a summary.
    #[arg(long)]
    pub json: bool,
}

/// A function as `list --json` prints it.
#[derive(Debug, Serialize)]
pub struct FunctionJson<'a> {
    pub function: &'a str,
    pub module: &'a str,
    pub address: String,
    /// With `-v`: the C prototype from BTF; null where BTF has none (module functions,
    /// functions the compiler left out of BTF).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prototype: Option<Option<String>>,
    /// Why kprobe_multi cannot take it, for a function only a kprobe of its own can probe.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kprobe_only: Option<&'static str>,
}

/// The last line of `list --json`.
#[derive(Debug, Serialize)]
pub struct ListSummary {
    pub event: &'static str,
    pub functions: usize,
    pub traceable: usize,
    /// Of `functions`, how many only a kprobe of their own can probe.
    #[serde(skip_serializing_if = "is_zero")]
    pub kprobe_only: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// Lists the functions; `verbose` (the global `-v`) adds prototypes.
pub fn run(args: &ListArgs, verbose: bool, listing: &Listing, out: &mut Output) -> Result<(), CliError> {
    let patterns = if args.patterns.is_empty() { vec!["*".to_string()] } else { args.patterns.clone() };
    let resolved = select::resolve_with_kprobe_only(&select::selection(&patterns, &args.select), listing)?;
    let mut functions = resolved.functions;
    sort(&mut functions);
    let listed = functions.len();
    functions.extend(resolved.kprobe_only);
    let prototypes = verbose.then(|| prototypes(&functions));
    let prototype = |i: usize| prototypes.as_ref().map(|p| p[i].clone());
    if args.json {
        for (i, f) in functions.iter().enumerate() {
            out.json(&FunctionJson {
                function: &f.name,
                module: module_name(f),
                address: hex_address(f.address),
                prototype: prototype(i),
                kprobe_only: (i >= listed).then_some(select::KPROBE_ONLY_REASON),
            })?;
        }
        out.json(&ListSummary {
            event: "summary",
            functions: functions.len(),
            traceable: resolved.traceable,
            kprobe_only: functions.len() - listed,
        })?;
    } else {
        out.text(&render(&functions, listed, prototypes.as_deref(), resolved.traceable))?;
    }
    Ok(())
}

/// Each function's prototype from the kernel's BTF (vmlinux only: module BTF is split BTF,
/// not read here). Without kernel BTF every prototype is unknown.
fn prototypes(functions: &[Function]) -> Vec<Option<String>> {
    let btf = multiprobe::btf::kernel::vmlinux().ok();
    if btf.is_none() {
        crate::error::warning("the kernel's BTF (/sys/kernel/btf/vmlinux) cannot be read: no prototypes");
    }
    functions
        .iter()
        .map(|f| btf.as_deref().filter(|_| f.module.is_none()).and_then(|b| crate::prototype::of_function(b, &f.name)))
        .collect()
}

/// By name, then module (vmlinux first), then address.
pub fn sort(functions: &mut [Function]) {
    functions.sort_by(|a, b| (&a.name, &a.module, a.address).cmp(&(&b.name, &b.module, b.address)));
}

/// `ADDRESS  MODULE  NAME` lines (the prototype in place of the name where known), then
/// the total. Functions from index `listed` on are kprobe-only: their line says why.
pub fn render(
    functions: &[Function],
    listed: usize,
    prototypes: Option<&[Option<String>]>,
    traceable: usize,
) -> String {
    let width = functions.iter().map(|f| module_name(f).len()).max().unwrap_or(0);
    let mut s = String::with_capacity(functions.len() * 48);
    for (i, f) in functions.iter().enumerate() {
        let name = prototypes.and_then(|p| p[i].as_deref()).unwrap_or(&f.name);
        s.push_str(&format!("{:016x}  {:<width$}  {name}", f.address, module_name(f)));
        if i >= listed {
            s.push_str(&format!("  (kprobe only: {})", select::KPROBE_ONLY_REASON));
        }
        s.push('\n');
    }
    s.push_str(&format!("{} (of {traceable} traceable", crate::output::functions(functions.len())));
    if functions.len() > listed {
        s.push_str(&format!("; {} kprobe only", functions.len() - listed));
    }
    s.push_str(")\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(name: &str, module: Option<&str>, address: u64) -> Function {
        Function { name: name.into(), module: module.map(Into::into), address }
    }

    #[test]
    fn sorted_by_name_then_module_with_the_total() {
        let mut v = vec![
            f("vfs_write", None, 0xffffffff81000020),
            f("vfs_read", Some("fakemod"), 0xffffffffc0000000),
            f("vfs_read", None, 0xffffffff81000010),
        ];
        sort(&mut v);
        assert_eq!(
            render(&v, 3, None, 1000),
            "ffffffff81000010  vmlinux  vfs_read\n\
             ffffffffc0000000  fakemod  vfs_read\n\
             ffffffff81000020  vmlinux  vfs_write\n\
             3 functions (of 1000 traceable)\n"
        );
    }

    #[test]
    fn json_shape() {
        let v = f("bm_status_read", Some("binfmt_misc"), 0xffffffffc0a01004);
        let j = FunctionJson {
            function: &v.name,
            module: module_name(&v),
            address: hex_address(v.address),
            prototype: None,
            kprobe_only: None,
        };
        assert_eq!(
            serde_json::to_string(&j).unwrap(),
            r#"{"function":"bm_status_read","module":"binfmt_misc","address":"0xffffffffc0a01004"}"#
        );
        let j = FunctionJson {
            function: "vfs_read",
            module: "vmlinux",
            address: hex_address(0xffffffff81234560),
            prototype: Some(Some("ssize_t vfs_read(struct file *file)".into())),
            kprobe_only: None,
        };
        assert_eq!(
            serde_json::to_string(&j).unwrap(),
            r#"{"function":"vfs_read","module":"vmlinux","address":"0xffffffff81234560","prototype":"ssize_t vfs_read(struct file *file)"}"#
        );
        let prototypes = [Some("ssize_t vfs_read(struct file *file)".to_string()), None];
        let v = [f("vfs_read", None, 0xffffffff81234560), f("bm_status_read", Some("binfmt_misc"), 0xffffffffc0a01004)];
        assert_eq!(
            render(&v, 2, Some(&prototypes), 9),
            "ffffffff81234560  vmlinux      ssize_t vfs_read(struct file *file)\n\
             ffffffffc0a01004  binfmt_misc  bm_status_read\n\
             2 functions (of 9 traceable)\n"
        );
        let s = ListSummary { event: "summary", functions: 1, traceable: 9, kprobe_only: 0 };
        assert_eq!(serde_json::to_string(&s).unwrap(), r#"{"event":"summary","functions":1,"traceable":9}"#);
    }

    #[test]
    fn kprobe_only_functions_say_why() {
        let v = [f("vfs_read", None, 0xffffffff81000010), f("__x64_sys_getppid", None, 0xffffffff81000100)];
        assert_eq!(
            render(&v, 1, None, 9),
            "ffffffff81000010  vmlinux  vfs_read\n\
             ffffffff81000100  vmlinux  __x64_sys_getppid  (kprobe only: not in available_filter_functions)\n\
             2 functions (of 9 traceable; 1 kprobe only)\n"
        );
    }
}
