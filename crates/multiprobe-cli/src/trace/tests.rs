//! The parts of `trace` that need no kernel: option parsing and the summary.

use super::*;

#[test]
fn task_names_are_packed_as_the_kernel_stores_them() {
    let c = parse_comm("mp-trace-test").unwrap();
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&c.0[0].to_le_bytes());
    bytes[8..].copy_from_slice(&c.0[1].to_le_bytes());
    assert_eq!(&bytes, b"mp-trace-test\0\0\0");
    assert!(parse_comm("123456789012345").is_ok(), "15 bytes fit");
    let e = parse_comm("1234567890123456").unwrap_err();
    assert!(e.contains("16 bytes") && e.contains("15"), "{e}");
    assert!(parse_comm("").is_err());
}

#[test]
fn buffer_sizes() {
    assert_eq!(parse_buffer_size("4M"), Ok(4 << 20));
    assert_eq!(parse_buffer_size("256K"), Ok(256 << 10));
    assert_eq!(parse_buffer_size("4096"), Ok(4096));
    assert_eq!(parse_buffer_size("1G"), Ok(1 << 30));
    for bad in ["3M", "2K", "0", "", "4X", "2G", "99999999999999999999K", "-4K"] {
        assert!(parse_buffer_size(bad).is_err(), "{bad:?}");
    }
    assert!(parse_buffer_size("3M").unwrap_err().contains("power of two"));
}

fn functions() -> Vec<Function> {
    ["do_sys_openat2", "do_filp_open", "vfs_read"]
        .iter()
        .map(|n| Function { name: n.to_string(), module: None, address: 0xffffffff81000000 })
        .collect()
}

fn summary<'a>(functions: &'a [Function], per_function: &'a [u64], lost: u64, ending: Ending) -> Summary<'a> {
    Summary {
        events: per_function.iter().sum(),
        per_function,
        functions,
        attached: functions.len(),
        lost,
        missed: Some(0),
        mode: "kprobe session",
        ending,
        attach: Duration::from_millis(40),
        ran: Duration::from_secs(2),
        detach: Some(Duration::from_millis(30)),
    }
}

#[test]
fn the_text_summary_always_says_what_was_lost() {
    let f = functions();
    let text = summary(&f, &[3, 1, 0], 0, Ending::Run(End::Duration)).text();
    assert!(text.contains("4 events from 2 of 3 functions, lost 0 events."), "{text}");
    assert!(text.contains("Attached in 40ms (kprobe session), ran 2.0s, detached in 30ms."), "{text}");
    let text = summary(&f, &[3, 1, 0], 7, Ending::Limit).text();
    assert!(text.contains("lost 7 events") && text.contains("--buffer-size"), "{text}");
    assert!(text.contains("(ended by --limit)"), "{text}");
    let text = Summary { detach: None, ..summary(&f, &[3, 1, 0], 0, Ending::Run(End::Duration)) }.text();
    assert!(text.contains("ran 2.0s; detaching...\n"), "before a slow detach: {text}");
}

#[test]
fn the_json_summary_counts_events_per_function() {
    let f = functions();
    let v = serde_json::to_value(summary(&f, &[1, 3, 0], 2, Ending::Run(End::Signal(2))).json("session")).unwrap();
    assert_eq!(v["event"], "summary");
    assert_eq!(v["end"], "SIGINT");
    assert_eq!((&v["events"], &v["lost"], &v["missed"]), (&4.into(), &2.into(), &0.into()));
    assert_eq!(
        v["functions"],
        serde_json::json!([{"function": "do_filp_open", "module": "vmlinux", "events": 3},
            {"function": "do_sys_openat2", "module": "vmlinux", "events": 1}])
    );
    assert_eq!(Ending::Limit.json(), "limit");
}

/// The program passes the verifier with every option that changes its code (arguments,
/// strings of one byte, of an odd size that leaves the stack to align, of the largest size,
/// `__user` tags, stacks, the filters), as each way of attaching loads it: on the kernels
/// the VMs boot, the verifier of each.
#[test]
fn the_program_loads_with_every_option() {
    use clap::Parser;

    use crate::latency::Method;
    use crate::probe::Strategy;

    testkit::require_root!("loading BPF programs");
    let mut methods = vec![Method::Pair(Strategy::KprobeMulti), Method::Pair(Strategy::PerFunction)];
    if crate::probe::session_support().is_yes() {
        methods.push(Method::Session);
    }
    let options: [&[&str]; 7] = [
        &[],
        &["--kstack"],
        &["--args", "--string-size", "0"],
        &["--args", "--string-size", "1"],
        &["--args", "--kstack"],
        &["--args", "--string-size", "7", "--kstack", "--errors=null"],
        &[
            "--args",
            "--string-size",
            "256",
            "--kstack",
            "--errors",
            "--min-duration",
            "1us",
            "--limit",
            "3",
            "--pid",
            "1",
            "--comm",
            "init",
        ],
    ];
    for method in methods {
        for extra in options {
            let argv = ["multiprobe", "trace", "f"].into_iter().chain(extra.iter().copied());
            let crate::Command::Trace(args) = crate::Cli::try_parse_from(argv).unwrap().command else { unreachable!() };
            let string_size = if args.args { args.string_size as usize } else { 0 };
            let layout = Layout { args: args.args, string_size, kstack: args.kstack };
            for user_tags in [false, true] {
                if let Err(e) = load(&args, method, &layout, user_tags) {
                    panic!("{method:?} {extra:?} user_tags={user_tags}: {e:?}");
                }
            }
        }
    }
}
