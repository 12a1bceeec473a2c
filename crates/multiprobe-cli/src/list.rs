//! `multiprobe list`: the traceable functions a set of patterns selects, with module and
//! address: what `count` and `latency` would attach to; with `-v`, each function's C
//! prototype from the kernel's BTF.

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
}

/// The last line of `list --json`.
#[derive(Debug, Serialize)]
pub struct ListSummary {
    pub event: &'static str,
    pub functions: usize,
    pub traceable: usize,
}

/// Lists the functions; `verbose` (the global `-v`) adds prototypes.
pub fn run(args: &ListArgs, verbose: bool, listing: &Listing, out: &mut Output) -> Result<(), CliError> {
    let patterns = if args.patterns.is_empty() { vec!["*".to_string()] } else { args.patterns.clone() };
    let resolved = select::resolve(&select::selection(&patterns, &args.select), listing)?;
    let mut functions = resolved.functions;
    sort(&mut functions);
    let prototypes = verbose.then(|| prototypes(&functions));
    let prototype = |i: usize| prototypes.as_ref().map(|p| p[i].clone());
    if args.json {
        for (i, f) in functions.iter().enumerate() {
            out.json(&FunctionJson {
                function: &f.name,
                module: module_name(f),
                address: hex_address(f.address),
                prototype: prototype(i),
            })?;
        }
        out.json(&ListSummary { event: "summary", functions: functions.len(), traceable: resolved.traceable })?;
    } else {
        out.text(&render(&functions, prototypes.as_deref(), resolved.traceable))?;
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
/// the total.
pub fn render(functions: &[Function], prototypes: Option<&[Option<String>]>, traceable: usize) -> String {
    let width = functions.iter().map(|f| module_name(f).len()).max().unwrap_or(0);
    let mut s = String::with_capacity(functions.len() * 48);
    for (i, f) in functions.iter().enumerate() {
        let name = prototypes.and_then(|p| p[i].as_deref()).unwrap_or(&f.name);
        s.push_str(&format!("{:016x}  {:<width$}  {name}\n", f.address, module_name(f)));
    }
    s.push_str(&format!("{} (of {traceable} traceable)\n", crate::output::functions(functions.len())));
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
            render(&v, None, 1000),
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
        };
        assert_eq!(
            serde_json::to_string(&j).unwrap(),
            r#"{"function":"vfs_read","module":"vmlinux","address":"0xffffffff81234560","prototype":"ssize_t vfs_read(struct file *file)"}"#
        );
        let prototypes = [Some("ssize_t vfs_read(struct file *file)".to_string()), None];
        let v = [f("vfs_read", None, 0xffffffff81234560), f("bm_status_read", Some("binfmt_misc"), 0xffffffffc0a01004)];
        assert_eq!(
            render(&v, Some(&prototypes), 9),
            "ffffffff81234560  vmlinux      ssize_t vfs_read(struct file *file)\n\
             ffffffffc0a01004  binfmt_misc  bm_status_read\n\
             2 functions (of 9 traceable)\n"
        );
        let s = ListSummary { event: "summary", functions: 1, traceable: 9 };
        assert_eq!(serde_json::to_string(&s).unwrap(), r#"{"event":"summary","functions":1,"traceable":9}"#);
    }
}
