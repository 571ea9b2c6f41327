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
