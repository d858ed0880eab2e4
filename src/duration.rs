//! Durations as users write them: `250ms`, `30s`, `5m`, `2h`, `1d`, `1m30s`, or bare seconds.

/// Parses a duration into milliseconds.
pub fn parse_ms(text: &str) -> Result<u64, String> {
    let s = text.trim();
    if s.is_empty() {
        return Err("empty duration".into());
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return s
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(1000))
            .ok_or_else(|| format!("{text:?}: too large"));
    }
    let mut total: u64 = 0;
    let mut rest = s;
    let mut last_unit = u64::MAX;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(format!("{text:?}: expected a number before the unit"));
        }
        let n: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("{text:?}: number too large"))?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "" => {
                return Err(format!(
                    "{text:?}: a unit (ms, s, m, h, d) must follow each number"
                ));
            }
            u => return Err(format!("{text:?}: unknown unit {u:?} (use ms, s, m, h, d)")),
        };
        if unit >= last_unit {
            return Err(format!(
                "{text:?}: units must go from largest to smallest, once each"
            ));
        }
        last_unit = unit;
        rest = &rest[unit_len..];
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| format!("{text:?}: too large"))?;
    }
    Ok(total)
}

/// For clap: a duration that may be zero.
pub fn any(text: &str) -> Result<u64, String> {
    parse_ms(text)
}

/// For clap: a duration that must be at least one millisecond (a lease).
pub fn positive(text: &str) -> Result<u64, String> {
    match parse_ms(text)? {
        0 => Err(format!("{text:?}: must be longer than 0")),
        n => Ok(n),
    }
}

/// The longest lease: a lease is a promise that its holder is alive, and one that outlives a
/// working day says nothing (SQS caps its visibility timeout the same way). `fsck` reports a
/// lease name that expires further ahead as a clock that jumped.
pub const MAX_LEASE_MS: u64 = 12 * 3_600_000;

/// For clap: a lease length, at least one millisecond and at most `MAX_LEASE_MS`.
pub fn lease(text: &str) -> Result<u64, String> {
    match positive(text)? {
        n if n > MAX_LEASE_MS => Err(format!("{text:?}: a lease is at most 12h")),
        n => Ok(n),
    }
}

/// Writes milliseconds back in the same notation, largest units first.
pub fn format_ms(ms: u64) -> String {
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    let mut rest = ms;
    for (unit, name) in [
        (86_400_000, "d"),
        (3_600_000, "h"),
        (60_000, "m"),
        (1_000, "s"),
        (1, "ms"),
    ] {
        if rest >= unit {
            out.push_str(&format!("{}{name}", rest / unit));
            rest %= unit;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_forms() {
        assert_eq!(parse_ms("250ms"), Ok(250));
        assert_eq!(parse_ms("30s"), Ok(30_000));
        assert_eq!(parse_ms("5m"), Ok(300_000));
        assert_eq!(parse_ms("2h"), Ok(7_200_000));
        assert_eq!(parse_ms("1d"), Ok(86_400_000));
        assert_eq!(parse_ms("1m30s"), Ok(90_000));
        assert_eq!(parse_ms("1h2m3s4ms"), Ok(3_723_004));
        assert_eq!(parse_ms("45"), Ok(45_000));
        assert_eq!(parse_ms("0"), Ok(0));
    }

    #[test]
    fn refuses_the_rest() {
        for bad in [
            "",
            "s",
            "1x",
            "1.5s",
            "-1",
            "1s1m",
            "1s1s",
            "m5",
            "99999999999999999999",
            "1 s",
        ] {
            assert!(parse_ms(bad).is_err(), "accepted {bad:?}");
        }
        assert!(positive("0").is_err());
        assert_eq!(lease("12h"), Ok(MAX_LEASE_MS));
        assert!(lease("12h1ms").is_err());
        assert!(lease("0").is_err());
        assert!(positive("0s").is_err());
        assert_eq!(any("0s"), Ok(0));
    }

    #[test]
    fn formats_round_trip() {
        for ms in [1, 999, 1_000, 90_000, 3_723_004, 86_400_000] {
            assert_eq!(parse_ms(&format_ms(ms)), Ok(ms));
        }
        assert_eq!(format_ms(90_000), "1m30s");
    }
}
