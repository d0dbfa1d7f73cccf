//! Durations on the command line: a number and a unit, `500ms`, `2s`, `1.5s`, `1m`.

use std::time::Duration;

const FORMS: &str =
    "expected a number and a unit, such as 500ms, 2s, 1.5s or 1m (units: ms, s, m, h)";

/// Parses `NUMBER UNIT` with no space between, where NUMBER is digits with an
/// optional decimal fraction and UNIT is `ms`, `s`, `m` or `h`. Zero is refused: a
/// timeout of zero would fail every call.
pub(crate) fn parse(text: &str) -> Result<Duration, String> {
    let bad = |why: &str| format!("invalid duration {text:?}: {why}");
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let unit_nanos: u128 = match unit {
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60 * 1_000_000_000,
        "h" => 60 * 60 * 1_000_000_000,
        "" if !number.is_empty() => return Err(bad(&format!("the unit is missing; {FORMS}"))),
        _ if number.is_empty() => return Err(bad(FORMS)),
        _ => return Err(bad(&format!("unknown unit {unit:?}; {FORMS}"))),
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() || fraction.contains('.') {
        return Err(bad(FORMS));
    }
    // Digits past nanosecond precision of the largest unit cannot matter.
    let fraction = &fraction[..fraction.len().min(13)];
    let too_large = || bad("it is too large");
    let whole: u128 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| too_large())?
    };
    let mut nanos = whole.checked_mul(unit_nanos).ok_or_else(too_large)?;
    if !fraction.is_empty() {
        let scale = 10u128.pow(u32::try_from(fraction.len()).unwrap_or(13));
        let digits: u128 = fraction.parse().map_err(|_| bad(FORMS))?;
        nanos += digits * unit_nanos / scale;
    }
    if nanos == 0 {
        return Err(bad("it must be more than zero"));
    }
    let secs = u64::try_from(nanos / 1_000_000_000).map_err(|_| too_large())?;
    let sub = u32::try_from(nanos % 1_000_000_000).map_err(|_| too_large())?;
    Ok(Duration::new(secs, sub))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn ok(text: &str, expected: Duration) {
        assert_eq!(parse(text), Ok(expected), "{text:?}");
    }

    #[track_caller]
    fn err(text: &str, needle: &str) {
        let msg = parse(text).expect_err(text);
        assert!(
            msg.contains(&format!("{text:?}")),
            "{msg:?} should name {text:?}"
        );
        assert!(msg.contains(needle), "{text:?}: {msg:?} lacks {needle:?}");
    }

    #[test]
    fn accepts_the_documented_forms() {
        ok("500ms", Duration::from_millis(500));
        ok("2s", Duration::from_secs(2));
        ok("1m", Duration::from_secs(60));
        ok("1h", Duration::from_secs(3600));
        ok("1.5s", Duration::from_millis(1500));
        ok("0.25s", Duration::from_millis(250));
        ok(".5s", Duration::from_millis(500));
        ok("2.s", Duration::from_secs(2));
        ok("1.5m", Duration::from_secs(90));
        ok("0.5ms", Duration::from_micros(500));
        ok("0.000000001s", Duration::from_nanos(1));
        ok("300ms", Duration::from_millis(300));
    }

    #[test]
    fn rejects_bad_text_naming_the_value_and_the_forms() {
        err("", "such as 500ms");
        err("5", "unit is missing");
        err("5x", "unknown unit \"x\"");
        err("5 s", "unknown unit \" s\"");
        err("s", "such as 500ms, 2s, 1.5s or 1m");
        err("-1s", "such as 500ms");
        err("1.2.3s", "such as 500ms");
        err(".s", "such as 500ms");
        err("0s", "more than zero");
        err("0.0000000001s", "more than zero");
        err("99999999999999999999999999999999999999999h", "too large");
        err("999999999999999999999h", "too large");
    }
}
