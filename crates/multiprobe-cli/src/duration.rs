//! Durations on the command line (`5s`, `100ms`, `2m`, `1m30s`, `0s`) and in output.

use std::time::Duration;

/// The longest `--duration` or `--interval` taken: a year. Longer runs are surely a typo, and
/// deadlines far beyond it would overflow the clock's arithmetic.
pub const MAX: Duration = Duration::from_secs(365 * 24 * 3600);

/// The shortest `--interval`: each report reads every CPU's counters and writes a table, so
/// reports closer together cost more than what they measure (and a clock of nanosecond
/// ticks would never catch up).
pub const MIN_INTERVAL: Duration = Duration::from_millis(10);

/// Parses a duration: one or more `NUMBER UNIT` parts (`ns`, `us`, `ms`, `s`, `m`, `h`),
/// summed; a bare number is seconds. At most [`MAX`]. For clap's `value_parser`.
pub fn parse(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    let shown = crate::error::quoted(text);
    if s.is_empty() {
        return Err("empty duration (examples: 5s, 100ms, 2m, 1m30s)".into());
    }
    if s.starts_with('-') {
        return Err(format!("{shown}: a duration must be positive (examples: 5s, 100ms, 2m)"));
    }
    if let Ok(secs) = s.parse::<f64>() {
        return seconds(secs, &shown);
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let unit_len = rest[num_len..].find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len() - num_len);
        let (num, unit) = (&rest[..num_len], rest[num_len..num_len + unit_len].trim());
        let value: f64 = num.parse().map_err(|_| format!("{shown} is not a duration (examples: 5s, 100ms, 2m)"))?;
        let scale = match unit {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" | "sec" => 1.0,
            "m" | "min" => 60.0,
            "h" => 3600.0,
            "" => return Err(format!("{shown}: a unit is needed after {num} (ns, us, ms, s, m, h)")),
            other => {
                let other = crate::error::quoted(other);
                return Err(format!("{shown}: unknown unit {other} (ns, us, ms, s, m, h)"));
            }
        };
        // Each part and the sum stay under MAX, so no addition can overflow.
        total += seconds(value * scale, &shown)?;
        if total > MAX {
            return Err(too_long(&shown));
        }
        rest = &rest[num_len + unit_len..];
    }
    Ok(total)
}

/// [`parse`] for intervals: at least [`MIN_INTERVAL`].
pub fn parse_interval(text: &str) -> Result<Duration, String> {
    match parse(text)? {
        d if d < MIN_INTERVAL => Err(format!(
            "{}: the interval must be at least {}ms (each report reads every CPU's counters)",
            crate::error::quoted(text),
            MIN_INTERVAL.as_millis()
        )),
        d => Ok(d),
    }
}

/// Seconds as a duration of at most [`MAX`].
fn seconds(secs: f64, shown: &str) -> Result<Duration, String> {
    if secs > MAX.as_secs_f64() {
        return Err(too_long(shown));
    }
    Duration::try_from_secs_f64(secs).map_err(|_| format!("{shown} is not a duration a run can last"))
}

fn too_long(shown: &str) -> String {
    format!("{shown} is longer than the maximum of 365 days (8760h)")
}

/// A duration for people: `850ms`, `12.3s`, `2m05s`.
pub fn human(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1e3;
    if ms < 1000.0 {
        format!("{ms:.0}ms")
    } else if ms < 60_000.0 {
        format!("{:.1}s", ms / 1e3)
    } else {
        let s = d.as_secs();
        format!("{}m{:02}s", s / 60, s % 60)
    }
}

/// Milliseconds with a fraction, for JSON.
pub fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// Nanoseconds for people, as latencies are shown: `512ns`, `2.0us`, `16.4ms`, `1.20s`.
pub fn nanos(ns: u64) -> String {
    let v = ns as f64;
    if ns < 1_000 {
        format!("{ns}ns")
    } else if ns < 1_000_000 {
        format!("{:.1}us", v / 1e3)
    } else if ns < 1_000_000_000 {
        format!("{:.1}ms", v / 1e6)
    } else {
        format!("{:.2}s", v / 1e9)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_sums() {
        assert_eq!(parse("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse("0s"), Ok(Duration::ZERO));
        assert_eq!(parse("0"), Ok(Duration::ZERO));
        assert_eq!(parse("100ms"), Ok(Duration::from_millis(100)));
        assert_eq!(parse("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse("250us"), Ok(Duration::from_micros(250)));
        assert_eq!(parse("7"), Ok(Duration::from_secs(7)));
        assert_eq!(parse(" 3s "), Ok(Duration::from_secs(3)));
    }

    #[test]
    fn rejects_what_is_not_a_duration() {
        for bad in ["", "s", "5x", "5 parsecs", "-1s", "1e400", "1.2.3s", "m5"] {
            assert!(parse(bad).is_err(), "{bad:?} parsed as {:?}", parse(bad));
        }
        assert!(parse("5x").unwrap_err().contains("unknown unit `x`"));
        assert!(parse_interval("0s").is_err());
        assert_eq!(parse_interval("1s"), Ok(Duration::from_secs(1)));
    }

    #[test]
    fn refuses_negative_durations() {
        for bad in ["-1", "-1s", "-0.5", " -3m"] {
            let e = parse(bad).unwrap_err();
            assert!(e.contains("must be positive"), "{bad:?}: {e}");
        }
    }

    /// Sums of parts near the limit of `Duration` used to overflow (a panic), and huge
    /// durations were accepted, then overflowed the deadline's `Instant`.
    #[test]
    fn refuses_durations_beyond_the_maximum_without_overflow() {
        assert_eq!(parse("8760h"), Ok(MAX));
        assert_eq!(parse("365d").unwrap_err(), "`365d`: unknown unit `d` (ns, us, ms, s, m, h)");
        let huge = format!("{}s", u64::MAX);
        for bad in
            ["8760h1ns", "99999999999h", "18446744073709551615s18446744073709551615s", &huge, "1e300", "31536001"]
        {
            let e = parse(bad).unwrap_err();
            assert!(e.contains("longer than the maximum of 365 days"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn intervals_have_a_minimum() {
        for bad in ["1ns", "9ms", "9999us"] {
            let e = parse_interval(bad).unwrap_err();
            assert!(e.contains("at least 10ms"), "{bad:?}: {e}");
        }
        assert_eq!(parse_interval("10ms"), Ok(MIN_INTERVAL));
    }

    #[test]
    fn control_characters_are_escaped_in_errors() {
        let e = parse("5\nx").unwrap_err();
        assert!(!e.contains('\n'), "{e:?}");
        assert!(e.contains("`5\\nx`"), "{e:?}");
    }

    #[test]
    fn formats_for_people() {
        assert_eq!(human(Duration::from_millis(850)), "850ms");
        assert_eq!(human(Duration::from_millis(12_345)), "12.3s");
        assert_eq!(human(Duration::from_secs(125)), "2m05s");
        assert_eq!(millis(Duration::from_micros(1500)), 1.5);
        assert_eq!(nanos(512), "512ns");
        assert_eq!(nanos(2048), "2.0us");
        assert_eq!(nanos(16_400_000), "16.4ms");
        assert_eq!(nanos(1_200_000_000), "1.20s");
    }
}
