//! Timestamps as Thena sends them (ISO 8601 with any offset, `YYYY-MM-DD
//! HH:MM:SS` in UTC, unix seconds or milliseconds), normalised to UTC.

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use serde_json::Value;

/// The last millisecond of the year 9999: later times are not accepted (and
/// would not print as four-digit ISO 8601 years).
pub const MAX_MS: i64 = 253_402_300_799_999;

/// A point in time, kept to the millisecond for ordering.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct Ts(pub i64);

impl Ts {
    pub fn from_datetime(d: DateTime<Utc>) -> Ts {
        Ts(d.timestamp_millis())
    }

    pub fn datetime(self) -> DateTime<Utc> {
        Utc.timestamp_millis_opt(self.0)
            .single()
            .unwrap_or_default()
    }

    /// UTC ISO 8601 with a `Z`, to the second: `2026-11-24T11:02:31Z`.
    pub fn iso(self) -> String {
        self.datetime().format("%Y-%m-%dT%H:%M:%SZ").to_string()
    }

    /// For people: `2026-11-24 11:02 UTC`.
    pub fn human(self) -> String {
        self.datetime().format("%Y-%m-%d %H:%M UTC").to_string()
    }
}

/// Parses a timestamp value; the error says what was expected.
pub fn parse(v: &Value) -> Result<Ts, String> {
    match v {
        Value::Number(n) => {
            let f = n.as_f64().ok_or("a number that is not finite")?;
            // Milliseconds from 1973 on are more than 1e11; seconds stay below it until 5138.
            let ms = if f.abs() >= 1e11 { f } else { f * 1000.0 };
            if !ms.is_finite() || !(0.0..=MAX_MS as f64).contains(&ms) {
                return Err(format!(
                    "{n} is not a time in unix seconds or milliseconds between 1970 and 9999"
                ));
            }
            Ok(Ts(ms as i64))
        }
        Value::String(s) => parse_str(s).ok_or_else(|| {
            format!(
                "'{}' is not an ISO 8601 time, 'YYYY-MM-DD HH:MM:SS', or unix seconds/milliseconds",
                clip(s)
            )
        }),
        _ => Err("expected a time (string or number)".into()),
    }
}

fn clip(s: &str) -> String {
    s.chars().take(40).collect()
}

pub fn parse_str(s: &str) -> Option<Ts> {
    parse_any_str(s).filter(|t| (0..=MAX_MS).contains(&t.0))
}

fn parse_any_str(s: &str) -> Option<Ts> {
    let s = s.trim();
    if let Ok(d) = DateTime::parse_from_rfc3339(s) {
        return Some(Ts::from_datetime(d.with_timezone(&Utc)));
    }
    for fmt in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
        if let Ok(n) = NaiveDateTime::parse_from_str(s, fmt) {
            return Some(Ts::from_datetime(n.and_utc()));
        }
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%d %H:%M:%S%.f%z"] {
        if let Ok(d) = DateTime::parse_from_str(s, fmt) {
            return Some(Ts::from_datetime(d.with_timezone(&Utc)));
        }
    }
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return s
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .and_then(|n| parse(&Value::Number(n)).ok());
    }
    None
}

/// A Slack message `ts` ("1764000300.000200") as a time.
pub fn slack_ts(ts: &str) -> Option<Ts> {
    let secs: f64 = ts.trim().parse().ok()?;
    (0.0..1e11)
        .contains(&secs)
        .then_some(Ts((secs * 1000.0) as i64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_accepted_form() {
        let want = "2026-11-24T11:02:31Z";
        for v in [
            json!("2026-11-24T11:02:31Z"),
            json!("2026-11-24T11:02:31.120Z"),
            json!("2026-11-24T12:02:31+01:00"),
            json!("2026-11-24T06:02:31-0500"),
            json!("2026-11-24 11:02:31"),
            json!(1795518151),
            json!(1795518151120u64),
            json!(1795518151.5),
            json!("1795518151"),
        ] {
            assert_eq!(parse(&v).unwrap().iso(), want, "{v}");
        }
        assert!(parse(&json!("yesterday"))
            .unwrap_err()
            .contains("not an ISO 8601 time"));
        assert!(parse(&json!(true)).is_err());
        assert!(parse(&json!(1e300)).is_err());
        assert!(parse(&json!("2026-13-45T99:00:00Z")).is_err());
        // Found by cargo-fuzz: a digit string in the year 63255 was accepted, and its
        // ISO form ("+63255-...") did not parse back.
        assert!(parse_str("00001934006287857237").is_none());
        assert!(parse(&json!(1_934_006_287_857_237i64))
            .unwrap_err()
            .contains("between 1970 and 9999"));
        assert!(parse(&json!(-5)).is_err());
        assert_eq!(parse_str("9999-12-31T23:59:59.999Z").unwrap().0, MAX_MS);
        assert_eq!(
            slack_ts("1764000300.000200").unwrap().iso(),
            "2025-11-24T16:05:00Z"
        );
        assert!(slack_ts("nope").is_none());
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in ".*", n in proptest::num::f64::ANY) {
            let _ = parse(&json!(s));
            if let Some(num) = serde_json::Number::from_f64(n) {
                let _ = parse(&Value::Number(num));
            }
            let _ = slack_ts(&s);
        }

        #[test]
        fn round_trips_through_iso(ms in 0i64..4_102_444_800_000) {
            let t = Ts(ms - ms % 1000);
            proptest::prop_assert_eq!(parse_str(&t.iso()), Some(t));
        }
    }
}
