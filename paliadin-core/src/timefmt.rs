//! Time as people and logs read it: RFC 3339 in UTC, and durations such as
//! `90s`, `15m`, `12h`, `30d`, `2w`. No time zone database, no clock of its
//! own beyond [`now_ms`].

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` for milliseconds since the epoch.
pub fn rfc3339_ms(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let milli = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{milli:03}Z",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    )
}

/// The calendar day (`YYYY-MM-DD`, UTC) of milliseconds since the epoch.
pub fn day_of_ms(ms: i64) -> String {
    rfc3339_ms(ms)[..10].to_owned()
}

// Howard Hinnant's days-from-civil and its inverse.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 } as i64;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Parses `90s`, `15m`, `12h`, `30d`, `2w` (a bare number is seconds).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().map_err(|_| {
        format!("invalid duration {s:?}: expected a number and a unit, such as 30d or 12h")
    })?;
    let mult = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => {
            return Err(format!(
                "invalid duration {s:?}: the unit is one of s, m, h, d, w"
            ))
        }
    };
    Ok(Duration::from_secs(n.saturating_mul(mult)))
}

/// Parses a point in time: a duration ago (`2h`), a day (`2026-11-25`) or
/// RFC 3339 in UTC (`2026-11-25T10:00:00Z`). Returns epoch milliseconds.
pub fn parse_since(s: &str, now_ms: i64) -> Result<i64, String> {
    if let Ok(d) = parse_duration(s) {
        return Ok(now_ms - d.as_millis() as i64);
    }
    let bad = || {
        format!("invalid time {s:?}: expected a duration (2h, 7d), a day (2026-11-25) or 2026-11-25T10:00:00Z")
    };
    let (date, time) = match s.split_once('T') {
        Some((d, t)) => (d, Some(t.strip_suffix('Z').ok_or_else(bad)?)),
        None => (s, None),
    };
    let parts: Vec<&str> = date.split('-').collect();
    if parts.len() != 3 || parts[0].len() != 4 || parts[1].len() != 2 || parts[2].len() != 2 {
        return Err(bad());
    }
    let y: i64 = parts[0].parse().map_err(|_| bad())?;
    let m: u32 = parts[1].parse().map_err(|_| bad())?;
    let d: u32 = parts[2].parse().map_err(|_| bad())?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return Err(bad());
    }
    let mut secs = days_from_civil(y, m, d) * 86_400;
    if let Some(t) = time {
        let t = t.split('.').next().unwrap_or("");
        let hms: Vec<u32> = t
            .split(':')
            .map(|p| p.parse().map_err(|_| bad()))
            .collect::<Result<_, _>>()?;
        if hms.len() != 3 || hms[0] > 23 || hms[1] > 59 || hms[2] > 60 {
            return Err(bad());
        }
        secs += (hms[0] * 3600 + hms[1] * 60 + hms[2]) as i64;
    }
    Ok(secs * 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_known_instants() {
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_ms(1_795_618_373_123), "2026-11-25T14:52:53.123Z");
        assert_eq!(
            parse_since("2026-11-25T14:52:53Z", 0).unwrap(),
            1_795_618_373_000
        );
        assert_eq!(parse_since("2024-02-29", 0).unwrap(), 1_709_164_800_000);
        assert_eq!(day_of_ms(1_709_164_800_000), "2024-02-29");
        assert_eq!(
            parse_since("2h", 10_000_000).unwrap(),
            10_000_000 - 7_200_000
        );
        assert!(parse_since("yesterday", 0).is_err());
        assert!(parse_since("2024-13-01", 0).is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(
            parse_duration("30d").unwrap(),
            Duration::from_secs(30 * 86_400)
        );
        assert_eq!(parse_duration("45").unwrap(), Duration::from_secs(45));
        assert!(parse_duration("3y").is_err());
        assert!(parse_duration("-1d").is_err());
    }
}
