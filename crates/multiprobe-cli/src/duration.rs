//! Durations on the command line (`5s`, `100ms`, `2m`, `1m30s`, `0s`) and in output.

use std::time::Duration;

/// Parses a duration: one or more `NUMBER UNIT` parts (`ns`, `us`, `ms`, `s`, `m`, `h`),
/// summed; a bare number is seconds. For clap's `value_parser`.
pub fn parse(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    if s.is_empty() {
        return Err("empty duration (examples: 5s, 100ms, 2m, 1m30s)".into());
    }
    if let Ok(secs) = s.parse::<f64>() {
        return seconds(secs, text);
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let unit_len = rest[num_len..].find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len() - num_len);
        let (num, unit) = (&rest[..num_len], rest[num_len..num_len + unit_len].trim());
        let value: f64 = num.parse().map_err(|_| format!("`{text}` is not a duration (examples: 5s, 100ms, 2m)"))?;
        let scale = match unit {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" | "sec" => 1.0,
            "m" | "min" => 60.0,
            "h" => 3600.0,
            "" => return Err(format!("`{text}`: a unit is needed after {num} (ns, us, ms, s, m, h)")),
            other => return Err(format!("`{text}`: unknown unit `{other}` (ns, us, ms, s, m, h)")),
        };
        total += seconds(value * scale, text)?;
        rest = &rest[num_len + unit_len..];
    }
    Ok(total)
}

/// [`parse`], refusing zero (an interval of nothing).
pub fn parse_nonzero(text: &str) -> Result<Duration, String> {
    match parse(text)? {
        d if d.is_zero() => Err(format!("`{text}`: the interval must be longer than zero")),
        d => Ok(d),
    }
}

fn seconds(secs: f64, text: &str) -> Result<Duration, String> {
    Duration::try_from_secs_f64(secs).map_err(|_| format!("`{text}` is not a duration a run can last"))
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
        assert!(parse_nonzero("0s").is_err());
        assert_eq!(parse_nonzero("1s"), Ok(Duration::from_secs(1)));
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
