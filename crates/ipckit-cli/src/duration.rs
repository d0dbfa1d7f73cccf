//! Durations on the command line: `500ms`, `2s`, `1.5s`, `1m`, `1m30s`, parsed
//! by the `humantime` crate (units ns, us, ms, s, m, h, d and their long forms).

use std::time::Duration;

const FORMS: &str = "expected a number and a unit, such as 500ms, 2s, 1.5s or 1m (or a sum: 1m30s)";

/// Parses a duration as `humantime` does, refusing zero: a timeout of zero
/// would fail every call. The error names the text and the forms accepted.
pub(crate) fn parse(text: &str) -> Result<Duration, String> {
    let bad = |why: &dyn std::fmt::Display| format!("invalid duration {text:?}: {why}; {FORMS}");
    let duration = humantime::parse_duration(text).map_err(|e| bad(&e))?;
    if duration.is_zero() {
        return Err(bad(&"it must be more than zero"));
    }
    Ok(duration)
}

/// As [`parse`], but zero (`0` or `0s`) is allowed: for waits that may be
/// skipped, such as `connect -q 0`.
pub(crate) fn parse_or_zero(text: &str) -> Result<Duration, String> {
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    match parse(text) {
        Err(_) if humantime::parse_duration(text).is_ok_and(|d| d.is_zero()) => Ok(Duration::ZERO),
        other => other,
    }
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
        ok("1m30s", Duration::from_secs(90));
        ok("1m 30s", Duration::from_secs(90));
        ok("1.5m", Duration::from_secs(90));
        ok("0.5ms", Duration::from_micros(500));
        ok("0.000000001s", Duration::from_nanos(1));
        ok("300ms", Duration::from_millis(300));
    }

    #[test]
    fn rejects_bad_text_naming_the_value_and_the_forms() {
        err("", "such as 500ms");
        err("5", "time unit needed");
        err("5x", "unknown time unit \"x\"");
        err("s", "such as 500ms, 2s, 1.5s or 1m");
        err("-1s", "such as 500ms");
        err("1.2.3s", "such as 500ms");
        err(".s", "such as 500ms");
        err("0s", "more than zero");
        err("99999999999999999999999999999999999999999h", "too large");
        err("999999999999999999999h", "too large");
    }
}
