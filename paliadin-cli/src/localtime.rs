//! A moment for people, in the reader's own time zone (the C library's
//! `localtime_r`, which reads `TZ` and the system's zone): `2026-12-02
//! 19:00 +01:00 (in 2 h 13 min)`. JSON never uses it: it keeps RFC 3339
//! UTC. Owns nothing else.

use paliadin_core::timefmt::rfc3339_ms;

/// The local zone's offset from UTC at `unix_s`, in seconds (0 when the
/// C library cannot tell).
pub fn offset_s(unix_s: i64) -> i64 {
    let t = unix_s as libc::time_t;
    // SAFETY: `localtime_r` only writes the `tm` it is given and reads `t`.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let ok = unsafe { !libc::localtime_r(&t, &mut tm).is_null() };
    if ok {
        tm.tm_gmtoff as i64
    } else {
        0
    }
}

/// `in 2 h 13 min`, `in 40 s`, or `now` for a moment `ms` after `now_ms`.
fn from_now(ms: i64, now_ms: i64) -> String {
    let s = (ms - now_ms).div_euclid(1000);
    match s {
        i64::MIN..=0 => "now".into(),
        1..=59 => format!("in {s} s"),
        60..=3599 => format!("in {} min", s / 60),
        3600..=86_399 => format!("in {} h {} min", s / 3600, s % 3600 / 60),
        _ => format!("in {} d {} h", s / 86_400, s % 86_400 / 3600),
    }
}

/// `ms` (since the epoch) as local wall time with its offset, and how far
/// from `now_ms` it is: `2026-12-02 19:00 +01:00 (in 2 h 13 min)`.
pub fn for_people(ms: i64, now_ms: i64) -> String {
    let off = offset_s(ms.div_euclid(1000));
    let local = rfc3339_ms(ms + off * 1000);
    let sign = if off < 0 { '-' } else { '+' };
    let a = off.abs();
    format!(
        "{} {} {sign}{:02}:{:02} ({})",
        &local[..10],
        &local[11..16],
        a / 3600,
        a % 3600 / 60,
        from_now(ms, now_ms)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_moment_reads_with_its_offset_and_distance() {
        let t = 1_796_234_400_000; // 2026-12-02T18:00:00Z
        let s = for_people(t, t - 7_980_000);
        let off = offset_s(t / 1000);
        let local = rfc3339_ms(t + off * 1000);
        assert!(
            s.starts_with(&format!("{} {}", &local[..10], &local[11..16])),
            "{s}"
        );
        assert!(s.ends_with("(in 2 h 13 min)"), "{s}");
        assert_eq!(from_now(t, t + 5), "now");
        assert_eq!(from_now(t + 40_000, t), "in 40 s");
        assert_eq!(from_now(t + 3 * 86_400_000, t), "in 3 d 0 h");
    }
}
