//! One call as the BPF program sends it through the ring buffer, and as it is shown: an
//! aligned line for people, a JSON `call` event for programs.

use multiprobe::symbols::Function;
use serde::Serialize;
use serde_json::Value;

use super::args::{self, Param, REGISTERS};
use super::ret::{self, RetType};
use crate::duration;
use crate::select::module_name;

/// `struct event` in bpf/trace.bpf.c.
#[derive(Debug, Clone, Copy, bytemuck::Zeroable, bytemuck::Pod)]
#[repr(C)]
pub struct RawEvent {
    pub ts_ns: u64,
    pub duration_ns: u64,
    pub ret: u64,
    pub pid_tgid: u64,
    pub function: u32,
    pub cpu: u32,
    pub comm: [u8; 16],
    /// The argument registers at entry; zero unless `--args` (the record stops before them).
    pub args: [u64; REGISTERS],
}

/// Where the arguments start: records without them end here.
const WITHOUT_ARGS: usize = 56;

impl RawEvent {
    /// Reads a ring buffer record, with or without arguments; `None` if it is too short to
    /// be an event.
    pub fn parse(record: &[u8]) -> Option<RawEvent> {
        if record.len() < WITHOUT_ARGS {
            return None;
        }
        let mut bytes = [0u8; size_of::<RawEvent>()];
        let n = record.len().min(bytes.len());
        bytes[..n].copy_from_slice(&record[..n]);
        Some(bytemuck::pod_read_unaligned(&bytes))
    }

    pub fn pid(&self) -> u32 {
        (self.pid_tgid >> 32) as u32
    }

    pub fn tid(&self) -> u32 {
        self.pid_tgid as u32
    }

    /// The task's name, up to its NUL.
    pub fn comm(&self) -> String {
        let end = self.comm.iter().position(|&b| b == 0).unwrap_or(self.comm.len());
        String::from_utf8_lossy(&self.comm[..end]).into_owned()
    }
}

/// A call decoded for output: the function found by index, the return value by its type.
#[derive(Debug, Clone)]
pub struct Call<'a> {
    pub raw: RawEvent,
    pub function: &'a Function,
    pub ret: ret::Ret,
    /// With `--args`: `name=value` text and the JSON object.
    pub args: Option<(String, Value)>,
}

impl<'a> Call<'a> {
    /// Decodes `raw`; `None` when its index names no selected function (never from our
    /// program, but the ring is the kernel's word against ours).
    /// `params` (one list per function) only with `--args`.
    pub fn decode(
        raw: RawEvent,
        functions: &'a [Function],
        types: &[RetType],
        params: Option<&[Vec<Param>]>,
    ) -> Option<Call<'a>> {
        let index = raw.function as usize;
        let function = functions.get(index)?;
        let ret = ret::decode(types.get(index)?, raw.ret);
        let args = match params {
            Some(params) => Some(args::render(params.get(index)?, &raw.args)),
            None => None,
        };
        Some(Call { raw, function, ret, args })
    }

    /// The JSON `call` event.
    pub fn json(&self) -> CallJson<'_> {
        CallJson {
            event: "call",
            ts_ns: self.raw.ts_ns,
            cpu: self.raw.cpu,
            pid: self.raw.pid(),
            tid: self.raw.tid(),
            comm: self.raw.comm(),
            function: &self.function.name,
            module: module_name(self.function),
            duration_ns: self.raw.duration_ns,
            ret: self.ret.json.clone(),
            errno: self.ret.errno.as_deref(),
            args: self.args.as_ref().map(|(_, json)| json),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct CallJson<'a> {
    event: &'static str,
    /// Entry time, CLOCK_MONOTONIC (as `bpf_ktime_get_ns`).
    ts_ns: u64,
    cpu: u32,
    pid: u32,
    tid: u32,
    comm: String,
    function: &'a str,
    module: &'a str,
    duration_ns: u64,
    ret: Value,
    errno: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    args: Option<&'a Value>,
}

/// Aligned text lines: widths fixed up front from the functions selected, so columns do not
/// move as events come.
#[derive(Debug, Clone)]
pub struct Columns {
    function: usize,
}

/// Names longer than this push their own line's columns rather than every line's.
const MAX_FUNCTION_WIDTH: usize = 40;

impl Columns {
    pub fn new(functions: &[Function]) -> Columns {
        let widest = functions.iter().map(|f| function_label(f).len()).max().unwrap_or(0);
        Columns { function: widest.clamp("FUNCTION".len(), MAX_FUNCTION_WIDTH) }
    }

    pub fn header(&self) -> String {
        format!(
            "{:>12} {:>3} {:>7} {:>7} {:<15} {:<w$} {:>9}  RETURN\n",
            "TIME(s)",
            "CPU",
            "PID",
            "TID",
            "COMM",
            "FUNCTION",
            "DURATION",
            w = self.function
        )
    }

    /// One call; `first_ts` is the entry time the TIME column counts from. Lines come in
    /// the order calls return: a call that entered before the first one shown (its caller,
    /// say) has a negative time.
    pub fn line(&self, call: &Call, first_ts: u64) -> String {
        let secs = (i128::from(call.raw.ts_ns) - i128::from(first_ts)) as f64 / 1e9;
        let line = format!(
            "{secs:>12.6} {:>3} {:>7} {:>7} {:<15} {:<w$} {:>9}  {}",
            call.raw.cpu,
            call.raw.pid(),
            call.raw.tid(),
            call.raw.comm(),
            function_label(call.function),
            duration::nanos(call.raw.duration_ns),
            call.ret.text,
            w = self.function
        );
        let line = match &call.args {
            Some((args, _)) => format!("{line}  {args}"),
            None => line,
        };
        // Void functions leave the last column empty.
        format!("{}\n", line.trim_end())
    }
}

/// `name` for the core kernel, `name [module]` for modules.
fn function_label(f: &Function) -> String {
    match &f.module {
        Some(m) => format!("{} [{m}]", f.name),
        None => f.name.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(function: u32, ret: u64) -> RawEvent {
        let mut comm = [0u8; 16];
        comm[..13].copy_from_slice(b"mp-trace-test");
        RawEvent {
            ts_ns: 5_000_123_456,
            duration_ns: 2_500,
            ret,
            pid_tgid: 300 << 32 | 301,
            function,
            cpu: 1,
            comm,
            args: [0; 6],
        }
    }

    fn functions() -> Vec<Function> {
        vec![
            Function { name: "do_sys_openat2".into(), module: None, address: 0xffffffff81000000 },
            Function { name: "load_misc_binary".into(), module: Some("binfmt_misc".into()), address: 0 },
        ]
    }

    #[test]
    fn records_parse_with_the_c_layout() {
        assert_eq!(size_of::<RawEvent>(), 104);
        assert_eq!(std::mem::offset_of!(RawEvent, args), WITHOUT_ARGS);
        let r = raw(0, 7);
        let bytes = bytemuck::bytes_of(&r)[..WITHOUT_ARGS].to_vec();
        let back = RawEvent::parse(&bytes).unwrap();
        assert_eq!(back.args, [0; REGISTERS], "records without arguments");
        assert_eq!((back.pid(), back.tid(), back.comm()), (300, 301, "mp-trace-test".to_string()));
        assert!(RawEvent::parse(&bytes[..40]).is_none());
    }

    #[test]
    fn json_carries_every_field() {
        let f = functions();
        let types = [RetType::Signed(8), RetType::Unknown];
        let call = Call::decode(raw(0, (-2i64) as u64), &f, &types, None).unwrap();
        let v = serde_json::to_value(call.json()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"event": "call", "ts_ns": 5_000_123_456u64, "cpu": 1, "pid": 300, "tid": 301,
                "comm": "mp-trace-test", "function": "do_sys_openat2", "module": "vmlinux",
                "duration_ns": 2500, "ret": -2, "errno": "ENOENT"})
        );
        let call = Call::decode(raw(1, 0x10), &f, &types, None).unwrap();
        let v = serde_json::to_value(call.json()).unwrap();
        assert_eq!(
            (&v["module"], &v["ret"], &v["errno"]),
            (&Value::from("binfmt_misc"), &Value::from("0x10"), &Value::Null)
        );
        assert!(Call::decode(raw(2, 0), &f, &types, None).is_none(), "an index past the functions");
    }

    #[test]
    fn lines_align_under_the_header() {
        let f = functions();
        let types = [RetType::Signed(4), RetType::Void];
        let cols = Columns::new(&f);
        let header = cols.header();
        let line = cols.line(&Call::decode(raw(0, (-2i64) as u64), &f, &types, None).unwrap(), 5_000_000_000);
        assert_eq!(
            line,
            "    0.000123   1     300     301 mp-trace-test   do_sys_openat2                     2.5us  -2 (ENOENT)\n"
        );
        assert_eq!(header.find("RETURN"), line.find("-2 (ENOENT)"), "{header}{line}");
        assert_eq!(header.find("FUNCTION"), line.find("do_sys_openat2"));
        let caller = cols.line(&Call::decode(raw(0, 0), &f, &types, None).unwrap(), 5_000_200_000);
        assert!(caller.starts_with("   -0.000077 "), "an earlier entry: {caller:?}");
        let void = cols.line(&Call::decode(raw(1, 0), &f, &types, None).unwrap(), 5_000_000_000);
        assert!(void.ends_with("load_misc_binary [binfmt_misc]     2.5us\n"), "{void:?}");
    }

    #[test]
    fn arguments_follow_the_return_value() {
        let f = functions();
        let types = [RetType::Signed(4), RetType::Void];
        let params = vec![
            vec![
                Param { name: "dfd".into(), ty: RetType::Signed(4) },
                Param { name: "how".into(), ty: RetType::Pointer },
            ],
            vec![],
        ];
        let mut r = raw(0, (-2i64) as u64);
        r.args = [(-100i64) as u64, 0x10, 0, 0, 0, 0];
        let call = Call::decode(r, &f, &types, Some(&params)).unwrap();
        assert!(Columns::new(&f).line(&call, 0).ends_with("-2 (ENOENT)  dfd=-100 how=0x10\n"));
        let v = serde_json::to_value(call.json()).unwrap();
        assert_eq!(v["args"], serde_json::json!({"dfd": -100, "how": "0x10"}));
        let without = Call::decode(raw(0, 0), &f, &types, None).unwrap();
        assert!(serde_json::to_value(without.json()).unwrap().get("args").is_none());
    }
}
