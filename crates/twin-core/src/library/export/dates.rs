//! The date formats exports use, to one sortable form.
//!
//! - ISO 8601 and SQL style: `2019-03-19T14:05:17.000Z`, `2019-03-19 14:05:17 UTC`;
//! - X's `created_at`: `Tue Mar 19 14:05:17 +0000 2019` (always UTC in archives);
//! - RSS (WordPress `pubDate`): `Tue, 19 Mar 2019 14:05:17 +0000`.
//!
//! Offsets other than UTC are not applied: a post's day is what the platform printed.

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];

fn month(name: &str) -> Option<u32> {
    let lower = name.get(..3)?.to_ascii_lowercase();
    MONTHS
        .iter()
        .position(|m| *m == lower)
        .map(|i| i as u32 + 1)
}

fn hms(s: &str) -> Option<(u32, u32, u32)> {
    let mut it = s.split(':').map(|p| p.get(..2).unwrap_or(p).parse::<u32>());
    let h = it.next()?.ok()?;
    let m = it.next()?.ok()?;
    let sec = it.next().and_then(Result::ok).unwrap_or(0);
    (h < 24 && m < 60 && sec < 61).then_some((h, m, sec))
}

/// `YYYY-MM-DDTHH:MM:SS` for any of the formats above.
pub fn timestamp(s: &str) -> Option<String> {
    let s = s.trim();
    if let Some(day) = crate::library::parse::normalize_date(s) {
        let rest = s.get(10..).unwrap_or("").trim_start_matches(['T', ' ']);
        let (h, m, sec) = hms(rest).unwrap_or((0, 0, 0));
        return Some(format!("{day}T{h:02}:{m:02}:{sec:02}"));
    }
    let words: Vec<&str> = s
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|w| !w.is_empty())
        .collect();
    // X: Tue Mar 19 14:05:17 +0000 2019
    if words.len() == 6 {
        if let (Some(mo), Ok(d), Some(t), Ok(y)) = (
            month(words[1]),
            words[2].parse::<u32>(),
            hms(words[3]),
            words[5].parse::<i32>(),
        ) {
            return valid(y, mo, d, t);
        }
    }
    // RSS: Tue, 19 Mar 2019 14:05:17 +0000
    if words.len() >= 5 {
        if let (Ok(d), Some(mo), Ok(y), Some(t)) = (
            words[1].parse::<u32>(),
            month(words[2]),
            words[3].parse::<i32>(),
            hms(words[4]),
        ) {
            return valid(y, mo, d, t);
        }
    }
    None
}

fn valid(y: i32, mo: u32, d: u32, (h, m, s): (u32, u32, u32)) -> Option<String> {
    ((1970..=9999).contains(&y) && (1..=31).contains(&d))
        .then(|| format!("{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}"))
}

/// `YYYY-MM-DD` for any of the formats above.
pub fn day(s: &str) -> Option<String> {
    timestamp(s).map(|t| t[..10].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    const MONTH_NAMES: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];

    proptest! {
        /// One moment written in each platform's format reads back as the same timestamp.
        #[test]
        fn every_format_of_a_moment_reads_back_the_same(
            y in 1970i32..2100, mo in 1u32..=12, d in 1u32..=28,
            h in 0u32..24, mi in 0u32..60, s in 0u32..60, wd in 0usize..7,
        ) {
            let expect = format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}");
            let name = MONTH_NAMES[mo as usize - 1];
            let written = [
                format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.000Z"),
                format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02} UTC"),
                format!("{} {name} {d:02} {h:02}:{mi:02}:{s:02} +0000 {y}", DAYS[wd]),
                format!("{}, {d:02} {name} {y} {h:02}:{mi:02}:{s:02} +0000", DAYS[wd]),
            ];
            for w in &written {
                prop_assert_eq!(timestamp(w), Some(expect.clone()), "{}", w);
                prop_assert_eq!(day(w), Some(expect[..10].to_string()));
            }
        }

        /// Any text at all: no panic, and what comes back is a well-formed timestamp.
        #[test]
        fn any_text_gives_nothing_or_a_well_formed_timestamp(s in "\\PC{0,40}") {
            if let Some(t) = timestamp(&s) {
                let b = t.as_bytes();
                prop_assert_eq!(t.len(), 19);
                prop_assert!(b[4] == b'-' && b[7] == b'-' && b[10] == b'T' && b[13] == b':');
                let month: u32 = t[5..7].parse().unwrap();
                let day: u32 = t[8..10].parse().unwrap();
                prop_assert!((1..=12).contains(&month) && (1..=31).contains(&day), "{}", t);
            }
        }
    }

    #[test]
    fn every_export_format_reads() {
        assert_eq!(
            timestamp("Tue Mar 19 14:05:17 +0000 2019").as_deref(),
            Some("2019-03-19T14:05:17")
        );
        assert_eq!(
            timestamp("2023-05-01T12:00:00.000Z").as_deref(),
            Some("2023-05-01T12:00:00")
        );
        assert_eq!(
            timestamp("2021-02-03 09:08:07").as_deref(),
            Some("2021-02-03T09:08:07")
        );
        assert_eq!(
            timestamp("Tue, 19 Mar 2019 14:05:17 +0000").as_deref(),
            Some("2019-03-19T14:05:17")
        );
        assert_eq!(day("2024-01-31").as_deref(), Some("2024-01-31"));
        assert_eq!(timestamp("yesterday"), None);
        assert_eq!(timestamp("0000-00-00 00:00:00"), None);
    }
}
