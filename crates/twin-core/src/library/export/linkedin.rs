//! LinkedIn's "Get a copy of your data": `Shares.csv` (posts), `Comments.csv` and
//! `Articles/Articles/*.html`. Everything else in the archive (connections, messages,
//! profile, reactions…) is not the user's published writing and is never opened.
//!
//! Quirks, as LinkedIn delivers them:
//! - `Shares.csv` wraps each line of a multi-line post in its own quotes, so after a CSV
//!   parse the text reads `line1"⏎""⏎"line2`; [`unwrap_line_quotes`] undoes that.
//! - `Comments.csv` escapes quotes with a backslash instead of doubling them.
//! - A share with no commentary is a repost of someone else's post.
//! - Posts fake bold and italics with Unicode mathematical letters; the cleaner maps them back.

use super::{dates, Archive, Body, Export, ExportItem, Kind, Platform};
use scraper::{Html, Selector};

/// Read every part of a LinkedIn archive.
pub fn read(archive: &mut Archive) -> Export {
    let mut export = Export::new(Platform::Linkedin);
    if let Some(name) = archive.find("Shares.csv") {
        match archive.read_text(&name) {
            Ok(text) => shares(&text, &name, &mut export),
            Err(e) => export.fail(&name, e),
        }
    }
    if let Some(name) = archive.find("Comments.csv") {
        match archive.read_text(&name) {
            Ok(text) => comments(&text, &name, &mut export),
            Err(e) => export.fail(&name, e),
        }
    }
    let articles: Vec<String> = archive
        .names()
        .filter(|n| n.contains("Articles/Articles/") && n.ends_with(".html"))
        .map(str::to_string)
        .collect();
    for name in articles {
        match archive.read_text(&name) {
            Ok(html) => article(&html, &name, &mut export),
            Err(e) => export.fail(&name, e),
        }
    }
    export
}

/// The columns `headers` must have, by name; the error names the missing one.
fn columns<const N: usize>(
    headers: &csv::StringRecord,
    want: [&str; N],
) -> Result<[usize; N], String> {
    let mut out = [0; N];
    for (slot, name) in out.iter_mut().zip(want) {
        *slot = headers
            .iter()
            .position(|h| h.trim().eq_ignore_ascii_case(name))
            .ok_or_else(|| {
                format!(
                    "missing column {name:?} (found: {})",
                    headers.iter().collect::<Vec<_>>().join(", ")
                )
            })?;
    }
    Ok(out)
}

/// Undo LinkedIn's per-line quoting of multi-line posts: every line but the first starts with
/// a quote and every line but the last ends with one. Text without that shape is left alone.
pub(crate) fn unwrap_line_quotes(text: &str) -> String {
    let lines: Vec<&str> = text.split('\n').collect();
    if lines.len() < 2 {
        return text.to_string();
    }
    let last = lines.len() - 1;
    let shaped = lines.iter().enumerate().all(|(i, l)| {
        let l = l.trim_end_matches('\r');
        (i == 0 || l.starts_with('"')) && (i == last || l.ends_with('"'))
    });
    if !shaped {
        return text.to_string();
    }
    lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let mut l = l.trim_end_matches('\r');
            if i > 0 {
                l = l.strip_prefix('"').unwrap_or(l);
            }
            if i < last {
                l = l.strip_suffix('"').unwrap_or(l);
            }
            l
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The `urn:li:…` id inside a LinkedIn URL (percent-encoded or not), else the URL itself.
fn urn_of(link: &str) -> String {
    let decoded = link.replace("%3A", ":").replace("%3a", ":");
    decoded
        .find("urn:li:")
        .map(|i| {
            decoded[i..]
                .split(['/', '?', '&', '#', ')'])
                .next()
                .unwrap_or_default()
                .to_string()
        })
        .unwrap_or_else(|| link.to_string())
}

/// The `want`ed columns of every row of a CSV part; a missing column fails the whole part,
/// a damaged row only itself, each named in `export`.
fn csv_rows<const N: usize>(
    builder: &mut csv::ReaderBuilder,
    text: &str,
    part: &str,
    want: [&str; N],
    export: &mut Export,
) -> Vec<[String; N]> {
    let mut reader = builder.flexible(true).from_reader(text.as_bytes());
    let cols = match reader
        .headers()
        .map_err(|e| e.to_string())
        .and_then(|h| columns(h, want))
    {
        Ok(c) => c,
        Err(e) => {
            export.fail(part, e);
            return Vec::new();
        }
    };
    let mut rows = Vec::new();
    for (row, record) in reader.records().enumerate() {
        match record {
            Ok(r) => rows.push(cols.map(|i| r.get(i).unwrap_or("").trim().to_string())),
            // Row 1 is the header.
            Err(e) => export.fail(part, format!("row {}: {e}", row + 2)),
        }
    }
    rows
}

fn shares(text: &str, part: &str, export: &mut Export) {
    let want = ["Date", "ShareLink", "ShareCommentary"];
    for [date, link, commentary] in
        csv_rows(&mut csv::ReaderBuilder::new(), text, part, want, export)
    {
        let commentary = unwrap_line_quotes(&commentary);
        if commentary.trim().is_empty() {
            export.skip("repost without commentary");
            continue;
        }
        export.items.push(ExportItem {
            platform: Platform::Linkedin,
            kind: Kind::Post,
            id: if link.is_empty() {
                format!("share:{date}")
            } else {
                urn_of(&link)
            },
            url: (!link.is_empty()).then(|| link.clone()),
            date: dates::day(&date),
            title: None,
            author: None,
            draft: false,
            body: Body::Text(commentary),
            part: part.to_string(),
            engagement: None,
        });
    }
}

fn comments(text: &str, part: &str, export: &mut Export) {
    // Quotes in messages are escaped with a backslash, not doubled.
    let mut builder = csv::ReaderBuilder::new();
    builder.double_quote(false).escape(Some(b'\\'));
    for [date, link, message] in csv_rows(
        &mut builder,
        text,
        part,
        ["Date", "Link", "Message"],
        export,
    ) {
        if message.is_empty() {
            export.skip("empty comment");
            continue;
        }
        export.items.push(ExportItem {
            platform: Platform::Linkedin,
            kind: Kind::Comment,
            id: format!("comment:{}@{date}", urn_of(&link)),
            url: (!link.is_empty()).then(|| link.clone()),
            date: dates::day(&date),
            title: None,
            author: None,
            draft: false,
            body: Body::Text(message),
            part: part.to_string(),
            engagement: None,
        });
    }
}

/// An article page: `<h1><a href=URL>Title</a></h1>`, `p.created`, `p.published`, the body.
fn article(html: &str, part: &str, export: &mut Export) {
    let doc = Html::parse_document(html);
    let sel = |s: &str| Selector::parse(s).ok();
    let text_of = |s: &str| {
        sel(s).and_then(|sel| {
            doc.select(&sel)
                .next()
                .map(|e| e.text().collect::<String>().trim().to_string())
        })
    };
    let title = text_of("h1").filter(|t| !t.is_empty());
    let url = sel("h1 a").and_then(|s| {
        doc.select(&s)
            .next()
            .and_then(|a| a.value().attr("href"))
            .map(str::to_string)
    });
    let published = text_of("p.published");
    let created = text_of("p.created");
    let stamp = |t: &Option<String>| {
        t.as_deref().and_then(|t| {
            let t = t.trim_start_matches(|c: char| !c.is_ascii_digit());
            dates::day(t)
        })
    };
    let mut body = String::new();
    if let Some(all) = sel("body > *") {
        for el in doc.select(&all) {
            let name = el.value().name();
            let is_meta = name == "h1"
                || name == "img"
                || (name == "p"
                    && el
                        .value()
                        .classes()
                        .any(|c| c == "created" || c == "published"));
            if !is_meta {
                body.push_str(&el.html());
            }
        }
    }
    if body.trim().is_empty() {
        export.fail(part, "no article body after the title and dates");
        return;
    }
    let file_id = part
        .rsplit('/')
        .next()
        .unwrap_or(part)
        .trim_end_matches(".html");
    export.items.push(ExportItem {
        platform: Platform::Linkedin,
        kind: Kind::Article,
        id: format!(
            "article:{}",
            url.as_deref()
                .and_then(|u| u.trim_end_matches('/').rsplit('/').next())
                .unwrap_or(file_id)
        ),
        url,
        date: stamp(&published).or_else(|| stamp(&created)),
        title,
        author: None,
        draft: published.is_none(),
        body: Body::Html(body),
        part: part.to_string(),
        engagement: None,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_line_quotes_are_undone() {
        assert_eq!(
            unwrap_line_quotes("line1\"\n\"\"\n\"line2"),
            "line1\n\nline2"
        );
        // A post that merely quotes someone keeps its quotes.
        assert_eq!(
            unwrap_line_quotes("He said \"ship it\"\nand left."),
            "He said \"ship it\"\nand left."
        );
    }

    #[test]
    fn urns_are_found_in_links() {
        assert_eq!(
            urn_of("https://www.linkedin.com/feed/update/urn%3Ali%3Ashare%3A7012345"),
            "urn:li:share:7012345"
        );
        assert_eq!(
            urn_of("https://www.linkedin.com/feed/update/urn:li:activity:99/"),
            "urn:li:activity:99"
        );
    }
}
