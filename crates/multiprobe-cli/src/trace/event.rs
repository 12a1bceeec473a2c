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
    /// Bit i: argument i's string follows the record (with `--args` and strings only).
    pub strings_read: u64,
}

/// Where the arguments start: records without them end here.
const WITHOUT_ARGS: usize = 56;
/// Where `strings_read` starts: records with arguments but no strings end here.
const WITHOUT_STRINGS: usize = 104;

/// What the program was loaded to send after the fixed part, so where each part of a record
/// is (`stack_offset()` in bpf/trace.bpf.c).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Layout {
    /// `--args`: the argument registers (and `strings_read`).
    pub args: bool,
    /// Bytes of each of the six strings after the record (with `args`); 0: none.
    pub string_size: usize,
    /// `--kstack`: a stack after the rest (its size in bytes, then return addresses).
    pub kstack: bool,
}

impl Layout {
    /// The end of the part [`RawEvent`] holds.
    fn fixed(&self) -> usize {
        match (self.args, self.string_size) {
            (false, _) => WITHOUT_ARGS,
            (true, 0) => WITHOUT_STRINGS,
            (true, _) => size_of::<RawEvent>(),
        }
    }

    /// Where the stack starts: after the strings, rounded up to 8 bytes.
    fn stack_offset(&self) -> usize {
        match (self.args, self.string_size) {
            (true, n) if n > 0 => (size_of::<RawEvent>() + 6 * n).next_multiple_of(8),
            _ => self.fixed(),
        }
    }
}

/// One string per argument register, where the program read one.
pub type Strings = [Option<String>; REGISTERS];

impl RawEvent {
    /// Reads a ring buffer record laid out as `layout` says; `None` if it is too short to be
    /// an event. The parts the layout leaves out read as zero.
    pub fn parse(record: &[u8], layout: &Layout) -> Option<RawEvent> {
        if record.len() < WITHOUT_ARGS {
            return None;
        }
        let mut bytes = [0u8; size_of::<RawEvent>()];
        let n = record.len().min(layout.fixed());
        bytes[..n].copy_from_slice(&record[..n]);
        Some(bytemuck::pod_read_unaligned(&bytes))
    }

    /// The strings that follow the record, `layout.string_size` bytes each (NUL-terminated
    /// by the kernel's read; up to the slot's end otherwise). Invalid UTF-8 is shown lossily.
    pub fn strings(&self, record: &[u8], layout: &Layout) -> Strings {
        let mut out = Strings::default();
        let string_size = layout.string_size;
        if !layout.args || string_size == 0 {
            return out;
        }
        let Some(tail) = record.get(size_of::<RawEvent>()..(size_of::<RawEvent>() + 6 * string_size).min(record.len()))
        else {
            return out;
        };
        for (i, (slot, chunk)) in out.iter_mut().zip(tail.chunks(string_size)).enumerate() {
            if self.strings_read & (1 << i) != 0 {
                let end = chunk.iter().position(|&b| b == 0).unwrap_or(chunk.len());
                *slot = Some(String::from_utf8_lossy(&chunk[..end]).into_owned());
            }
        }
        out
    }

    /// The kernel stack's return addresses after the record, innermost first (none without
    /// `layout.kstack`, or where the kernel could not walk the stack).
    pub fn stack(record: &[u8], layout: &Layout) -> Vec<u64> {
        if !layout.kstack {
            return Vec::new();
        }
        let off = layout.stack_offset();
        let word =
            |i: usize| record.get(off + 8 * i..off + 8 * i + 8).map(|b| u64::from_le_bytes(b.try_into().unwrap()));
        let Some(bytes) = word(0) else { return Vec::new() };
        // The kernel's count, bounded by the record: never more than was sent.
        (1..=(bytes / 8) as usize).map_while(word).collect()
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
    /// With `--kstack`: the frames, named, innermost first.
    pub stack: Option<Vec<String>>,
}

impl<'a> Call<'a> {
    /// [`Call::decode_with_strings`] for records without strings: the tests'.
    #[cfg(test)]
    pub fn decode(
        raw: RawEvent,
        functions: &'a [Function],
        types: &[RetType],
        params: Option<&[Vec<Param>]>,
    ) -> Option<Call<'a>> {
        Call::decode_with_strings(raw, &Strings::default(), functions, types, params)
    }

    /// Decodes `raw` with the string arguments its record carried; `None` when its index
    /// names no selected function (never from our program, but the ring is the kernel's
    /// word against ours). `params` (one list per function) only with `--args`.
    pub fn decode_with_strings(
        raw: RawEvent,
        strings: &Strings,
        functions: &'a [Function],
        types: &[RetType],
        params: Option<&[Vec<Param>]>,
    ) -> Option<Call<'a>> {
        let index = raw.function as usize;
        let function = functions.get(index)?;
        let ret = ret::decode(types.get(index)?, raw.ret);
        let args = match params {
            Some(params) => Some(args::render(params.get(index)?, &raw.args, strings)),
            None => None,
        };
        Some(Call { raw, function, ret, args, stack: None })
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
            stack: self.stack.as_deref(),
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
    #[serde(skip_serializing_if = "Option::is_none")]
    stack: Option<&'a [String]>,
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
        let mut line = format!("{}\n", line.trim_end());
        // The stack under its call, one frame a line, indented past the TIME column.
        for frame in call.stack.iter().flatten() {
            line.push_str(&format!("{:13}{frame}\n", ""));
        }
        line
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
            strings_read: 0,
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
        assert_eq!(size_of::<RawEvent>(), 112);
        assert_eq!(std::mem::offset_of!(RawEvent, strings_read), 104, "records with arguments, no strings");
        assert_eq!(std::mem::offset_of!(RawEvent, args), WITHOUT_ARGS);
        let r = raw(0, 7);
        let bytes = bytemuck::bytes_of(&r)[..WITHOUT_ARGS].to_vec();
        let plain = Layout::default();
        let back = RawEvent::parse(&bytes, &plain).unwrap();
        assert_eq!(back.args, [0; REGISTERS], "records without arguments");
        assert_eq!((back.pid(), back.tid(), back.comm()), (300, 301, "mp-trace-test".to_string()));
        assert!(RawEvent::parse(&bytes[..40], &plain).is_none());
        // A stack right after the fixed part is not read as arguments.
        let mut with_stack = bytes.clone();
        with_stack.extend_from_slice(&[0xff; 64]);
        assert_eq!(RawEvent::parse(&with_stack, &Layout { kstack: true, ..plain }).unwrap().args, [0; REGISTERS]);
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
                Param { name: "dfd".into(), ty: RetType::Signed(4), string: false, user: false },
                Param { name: "how".into(), ty: RetType::Pointer, string: false, user: false },
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

    #[test]
    fn strings_follow_the_record() {
        let mut r = raw(0, 3);
        r.strings_read = 0b101;
        let mut record = bytemuck::bytes_of(&r).to_vec();
        let mut tail = vec![0u8; 6 * 8];
        tail[..4].copy_from_slice(b"/etc");
        tail[8..12].copy_from_slice(b"skip");
        tail[16..24].copy_from_slice(b"abcdefgh");
        record.extend_from_slice(&tail);
        let layout = Layout { args: true, string_size: 8, kstack: false };
        let strings = r.strings(&record, &layout);
        assert_eq!(strings[0].as_deref(), Some("/etc"));
        assert_eq!(strings[1], None, "not read: its bit is clear");
        assert_eq!(strings[2].as_deref(), Some("abcdefgh"), "no NUL: up to the slot's end");
        assert_eq!(r.strings(&record[..100], &layout), Strings::default(), "a record without strings");
        assert_eq!(r.strings(&record, &Layout { string_size: 0, ..layout }), Strings::default());
    }

    /// The stack follows the strings at the next multiple of 8; its first word is the
    /// kernel's size in bytes, bounded by the record.
    #[test]
    fn stacks_follow_strings_aligned() {
        let r = raw(0, 0);
        let frames = [0xffffffff81000010u64, 0xffffffff81000020];
        let stack = |mut record: Vec<u8>, claimed: u64| {
            record.extend_from_slice(&claimed.to_le_bytes());
            frames.iter().for_each(|f| record.extend_from_slice(&f.to_le_bytes()));
            record
        };
        let plain = Layout { kstack: true, ..Layout::default() };
        let record = stack(bytemuck::bytes_of(&r)[..WITHOUT_ARGS].to_vec(), 16);
        assert_eq!(RawEvent::stack(&record, &plain), frames);
        assert_eq!(RawEvent::stack(&record, &Layout::default()), [0u64; 0], "no --kstack");
        // 6 strings of 5 bytes: 112 + 30 = 142, the stack at 144.
        let layout = Layout { args: true, string_size: 5, kstack: true };
        let mut record = bytemuck::bytes_of(&r).to_vec();
        record.resize(144, 0);
        let record = stack(record, 16);
        assert_eq!(RawEvent::stack(&record, &layout), frames);
        let lying = stack(bytemuck::bytes_of(&r)[..WITHOUT_ARGS].to_vec(), 800);
        assert_eq!(RawEvent::stack(&lying, &plain), frames, "no more than the record holds");
        // Shown under the call, and as a JSON list.
        let f = functions();
        let types = [RetType::Signed(4), RetType::Void];
        let mut call = Call::decode(r, &f, &types, None).unwrap();
        call.stack = Some(vec!["do_syscall_64+0x5d".into()]);
        let line = Columns::new(&f).line(&call, r.ts_ns);
        assert!(line.ends_with("\n             do_syscall_64+0x5d\n"), "{line:?}");
        assert_eq!(serde_json::to_value(call.json()).unwrap()["stack"], serde_json::json!(["do_syscall_64+0x5d"]));
    }
}
