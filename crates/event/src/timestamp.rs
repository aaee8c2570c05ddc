//! `@timestamp`: RFC 3339 in UTC with up to nanosecond precision, written with the number of
//! fractional digits it was read (or built) with, so that a received event is re-sent unchanged.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An instant in UTC, with the number of fractional-second digits to write (0 to 9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Timestamp {
    secs: i64,
    nanos: u32,
    digits: u8,
}

/// A string that is not an RFC 3339 date-time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an RFC 3339 date-time: {0}")]
pub struct TimestampError(&'static str);

/// Fewest fractional digits written for a timestamp the agent builds itself.
const MIN_BUILT_DIGITS: u8 = 3;

impl Timestamp {
    /// `secs` and `nanos` since the Unix epoch. Written with as many fractional digits as
    /// needed to keep every nanosecond, at least three (milliseconds).
    pub fn from_unix(secs: i64, nanos: u32) -> Timestamp {
        let secs = secs.saturating_add(i64::from(nanos / 1_000_000_000));
        let nanos = nanos % 1_000_000_000;
        let mut digits = 9u8;
        let mut n = nanos;
        while digits > MIN_BUILT_DIGITS && n % 10 == 0 {
            n /= 10;
            digits -= 1;
        }
        Timestamp {
            secs,
            nanos,
            digits,
        }
    }

    /// A `SystemTime`, at nanosecond precision (instants before 1970 are supported).
    pub fn from_system_time(t: SystemTime) -> Timestamp {
        match t.duration_since(UNIX_EPOCH) {
            Ok(d) => Timestamp::from_unix(
                i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
                d.subsec_nanos(),
            ),
            Err(e) => {
                let d = e.duration();
                let (secs, nanos) = (d.as_secs() as i64, d.subsec_nanos());
                if nanos == 0 {
                    Timestamp::from_unix(-secs, 0)
                } else {
                    Timestamp::from_unix(-secs - 1, 1_000_000_000 - nanos)
                }
            }
        }
    }

    /// The current time.
    pub fn now() -> Timestamp {
        Timestamp::from_system_time(SystemTime::now())
    }

    /// Seconds since the Unix epoch.
    pub fn unix_seconds(&self) -> i64 {
        self.secs
    }

    /// Nanoseconds within the second (0 to 999 999 999).
    pub fn subsec_nanos(&self) -> u32 {
        self.nanos
    }

    /// How many fractional digits are written.
    pub fn precision(&self) -> u8 {
        self.digits
    }

    /// The same instant, truncated to and written with `digits` fractional digits (at most 9).
    pub fn with_precision(self, digits: u8) -> Timestamp {
        let digits = digits.min(9);
        let unit = 10u32.pow(u32::from(9 - digits));
        Timestamp {
            secs: self.secs,
            nanos: self.nanos - self.nanos % unit,
            digits,
        }
    }

    /// The instant as a `SystemTime`.
    pub fn to_system_time(&self) -> SystemTime {
        let nanos = Duration::from_nanos(u64::from(self.nanos));
        if self.secs >= 0 {
            UNIX_EPOCH + Duration::from_secs(self.secs.unsigned_abs()) + nanos
        } else {
            UNIX_EPOCH - Duration::from_secs(self.secs.unsigned_abs()) + nanos
        }
    }
}

/// Longest text: `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`.
const MAX_LEN: usize = 30;

impl Timestamp {
    /// Formats into `buf` without allocating (events are serialized on the hot path).
    fn format<'a>(&self, buf: &'a mut [u8; MAX_LEN]) -> &'a str {
        fn put(buf: &mut [u8], mut v: u64, width: usize) {
            for slot in buf[..width].iter_mut().rev() {
                *slot = b'0' + (v % 10) as u8;
                v /= 10;
            }
        }
        let days = self.secs.div_euclid(86_400);
        let sod = self.secs.rem_euclid(86_400) as u64;
        let (y, m, d) = civil_from_days(days);
        // Years outside 0..=9999 are not representable in RFC 3339; clamp the digits.
        put(&mut buf[0..], y.clamp(0, 9999) as u64, 4);
        buf[4] = b'-';
        put(&mut buf[5..], m as u64, 2);
        buf[7] = b'-';
        put(&mut buf[8..], d as u64, 2);
        buf[10] = b'T';
        put(&mut buf[11..], sod / 3600, 2);
        buf[13] = b':';
        put(&mut buf[14..], sod % 3600 / 60, 2);
        buf[16] = b':';
        put(&mut buf[17..], sod % 60, 2);
        let mut len = 19;
        if self.digits > 0 {
            let digits = usize::from(self.digits);
            buf[19] = b'.';
            let frac = self.nanos / 10u32.pow(u32::from(9 - self.digits));
            put(&mut buf[20..], u64::from(frac), digits);
            len = 20 + digits;
        }
        buf[len] = b'Z';
        // Only ASCII digits and separators were written.
        std::str::from_utf8(&buf[..=len]).unwrap_or_default()
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; MAX_LEN];
        f.write_str(self.format(&mut buf))
    }
}

impl FromStr for Timestamp {
    type Err = TimestampError;

    /// RFC 3339: `YYYY-MM-DDTHH:MM:SS[.f{1,9}](Z|±HH:MM)`. Offsets are converted to UTC.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let b = s.as_bytes();
        let num = |range: std::ops::Range<usize>| -> Result<i64, TimestampError> {
            let part = b.get(range).ok_or(TimestampError("too short"))?;
            if part.is_empty() || !part.iter().all(u8::is_ascii_digit) {
                return Err(TimestampError("expected digits"));
            }
            Ok(part
                .iter()
                .fold(0i64, |acc, c| acc * 10 + i64::from(c - b'0')))
        };
        let sep = |i: usize, allowed: &[u8]| match b.get(i) {
            Some(c) if allowed.contains(c) => Ok(()),
            _ => Err(TimestampError("unexpected separator")),
        };
        let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
        sep(4, b"-")?;
        sep(7, b"-")?;
        sep(10, b"Tt ")?;
        let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
        sep(13, b":")?;
        sep(16, b":")?;
        if !(1..=12).contains(&month)
            || day < 1
            || day > days_in_month(year, month)
            || hour > 23
            || minute > 59
            || second > 60
        {
            return Err(TimestampError("field out of range"));
        }
        let mut i = 19;
        let (mut nanos, mut digits) = (0u32, 0u8);
        if b.get(i) == Some(&b'.') {
            i += 1;
            let start = i;
            while b.get(i).is_some_and(u8::is_ascii_digit) {
                if i - start < 9 {
                    nanos = nanos * 10 + u32::from(b[i] - b'0');
                    digits += 1;
                }
                i += 1;
            }
            if i == start {
                return Err(TimestampError("empty fraction"));
            }
            nanos *= 10u32.pow(u32::from(9 - digits));
        }
        let offset = match b.get(i) {
            Some(b'Z' | b'z') if i + 1 == b.len() => 0,
            Some(sign @ (b'+' | b'-')) if i + 6 == b.len() => {
                sep(i + 3, b":")?;
                let (oh, om) = (num(i + 1..i + 3)?, num(i + 4..i + 6)?);
                if oh > 23 || om > 59 {
                    return Err(TimestampError("offset out of range"));
                }
                let o = oh * 3600 + om * 60;
                if *sign == b'+' {
                    o
                } else {
                    -o
                }
            }
            _ => return Err(TimestampError("expected Z or a ±HH:MM offset at the end")),
        };
        // A leap second (:60) is folded into the next second, as most systems do.
        let secs = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second
            - offset;
        Ok(Timestamp {
            secs,
            nanos,
            digits,
        })
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut buf = [0u8; MAX_LEN];
        serializer.serialize_str(self.format(&mut buf))
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_instants() {
        let t: Timestamp = "2024-01-02T13:51:48.1394289Z".parse().unwrap();
        assert_eq!(t.unix_seconds(), 1_704_203_508);
        assert_eq!(t.subsec_nanos(), 139_428_900);
        assert_eq!(t.precision(), 7);
        assert_eq!(t.to_string(), "2024-01-02T13:51:48.1394289Z");
        assert_eq!(
            Timestamp::from_unix(0, 0).to_string(),
            "1970-01-01T00:00:00.000Z"
        );
        assert_eq!(
            Timestamp::from_unix(951_782_400, 5).to_string(),
            "2000-02-29T00:00:00.000000005Z"
        );
        assert_eq!(
            Timestamp::from_unix(-1, 500_000_000).to_string(),
            "1969-12-31T23:59:59.500Z"
        );
    }

    #[test]
    fn offsets_are_converted_to_utc() {
        let t: Timestamp = "2024-01-02T15:51:48.5+02:00".parse().unwrap();
        assert_eq!(t.to_string(), "2024-01-02T13:51:48.5Z");
        let t: Timestamp = "2024-01-02T13:51:48Z".parse().unwrap();
        assert_eq!(t.to_string(), "2024-01-02T13:51:48Z");
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "2024-01-02",
            "2024-13-02T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2024-01-02T24:00:00Z",
            "2024-01-02T00:00:00",
            "2024-01-02T00:00:00.Z",
            "2024-01-02T00:00:00Zjunk",
            "2024-01-02T00:00:00+0200",
        ] {
            assert!(bad.parse::<Timestamp>().is_err(), "{bad}");
        }
    }

    #[test]
    fn system_time_round_trips() {
        let now = SystemTime::now();
        assert_eq!(Timestamp::from_system_time(now).to_system_time(), now);
        let before = UNIX_EPOCH - Duration::new(10, 250);
        assert_eq!(Timestamp::from_system_time(before).to_system_time(), before);
    }

    proptest! {
        #[test]
        fn format_then_parse_is_identity(
            secs in -62_135_596_800i64..253_402_300_799,
            nanos in 0u32..1_000_000_000,
            digits in 0u8..=9,
        ) {
            let t = Timestamp::from_unix(secs, nanos).with_precision(digits);
            let text = t.to_string();
            prop_assert_eq!(text.parse::<Timestamp>().unwrap(), t);
            prop_assert_eq!(text.len(), 20 + usize::from(digits) + usize::from(digits > 0));
        }
    }
}
