//! `multiprobe list`: the traceable functions a set of patterns selects, with module and
//! address: what `count` and `latency` would attach to.

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
}

/// The last line of `list --json`.
#[derive(Debug, Serialize)]
pub struct ListSummary {
    pub event: &'static str,
    pub functions: usize,
    pub traceable: usize,
}

pub fn run(args: &ListArgs, listing: &Listing, out: &mut Output) -> Result<(), CliError> {
    let patterns = if args.patterns.is_empty() { vec!["*".to_string()] } else { args.patterns.clone() };
    let resolved = select::resolve(&select::selection(&patterns, &args.select), listing)?;
    let mut functions = resolved.functions;
    sort(&mut functions);
    if args.json {
        for f in &functions {
            out.json(&FunctionJson { function: &f.name, module: module_name(f), address: hex_address(f.address) })?;
        }
        out.json(&ListSummary { event: "summary", functions: functions.len(), traceable: resolved.traceable })?;
    } else {
        out.text(&render(&functions, resolved.traceable))?;
    }
    Ok(())
}

/// By name, then module (vmlinux first), then address.
pub fn sort(functions: &mut [Function]) {
    functions.sort_by(|a, b| (&a.name, &a.module, a.address).cmp(&(&b.name, &b.module, b.address)));
}

/// `ADDRESS  MODULE  NAME` lines, then the total.
pub fn render(functions: &[Function], traceable: usize) -> String {
    let width = functions.iter().map(|f| module_name(f).len()).max().unwrap_or(0);
    let mut s = String::with_capacity(functions.len() * 48);
    for f in functions {
        s.push_str(&format!("{:016x}  {:<width$}  {}\n", f.address, module_name(f), f.name));
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
            render(&v, 1000),
            "ffffffff81000010  vmlinux  vfs_read\n\
             ffffffffc0000000  fakemod  vfs_read\n\
             ffffffff81000020  vmlinux  vfs_write\n\
             3 functions (of 1000 traceable)\n"
        );
    }

    #[test]
    fn json_shape() {
        let v = f("bm_status_read", Some("binfmt_misc"), 0xffffffffc0a01004);
        let j = FunctionJson { function: &v.name, module: module_name(&v), address: hex_address(v.address) };
        assert_eq!(
            serde_json::to_string(&j).unwrap(),
            r#"{"function":"bm_status_read","module":"binfmt_misc","address":"0xffffffffc0a01004"}"#
        );
        let s = ListSummary { event: "summary", functions: 1, traceable: 9 };
        assert_eq!(serde_json::to_string(&s).unwrap(), r#"{"event":"summary","functions":1,"traceable":9}"#);
    }
}
