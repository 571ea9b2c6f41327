//! Medium's export: one HTML page per story or response in `posts/`.
//!
//! Each page is an `article.h-entry`: `h1.p-name` (title), `section[data-field=subtitle]`,
//! `section[data-field=body]` of `.graf` elements in which the title is repeated as
//! `.graf--title`, `time.dt-published` and `a.p-canonical`. Files named `draft_…` are drafts;
//! a response (a comment on someone's story) has no title graf. The rest of the export
//! (claps, bookmarks, followers, sessions) is not opened.

use super::{dates, Archive, Body, Export, ExportItem, Kind, Platform};
use scraper::{Html, Selector};

/// Whether `name` is a story page inside the export.
pub fn is_post_path(name: &str) -> bool {
    let mut parts = name.rsplit('/');
    let file = parts.next().unwrap_or_default();
    parts.next() == Some("posts") && file.ends_with(".html")
}

/// Read every story and response.
pub fn read(archive: &mut Archive) -> Export {
    let mut export = Export::new(Platform::Medium);
    let names: Vec<String> = archive
        .names()
        .filter(|n| is_post_path(n))
        .map(str::to_string)
        .collect();
    for name in names {
        match archive.read_text(&name) {
            Ok(html) => post(&html, &name, &mut export),
            Err(e) => export.fail(&name, e),
        }
    }
    export
}

fn post(html: &str, part: &str, export: &mut Export) {
    let doc = Html::parse_document(html);
    let sel = |s: &str| Selector::parse(s).ok();
    let first = |s: &str| sel(s).and_then(|sel| doc.select(&sel).next());
    let Some(body) = first("section[data-field=body]") else {
        export.fail(
            part,
            "no story body (section[data-field=body]); not a Medium post page",
        );
        return;
    };
    let mut body_html = body.inner_html();
    let title_graf = sel(".graf--title").and_then(|s| body.select(&s).next());
    if let Some(t) = title_graf {
        body_html = body_html.replacen(&t.html(), "", 1);
    }
    let title = first("h1.p-name")
        .map(|e| e.text().collect::<String>().trim().to_string())
        .filter(|t| !t.is_empty());
    let url = first("a.p-canonical")
        .and_then(|a| a.value().attr("href"))
        .map(str::to_string);
    let date = first("time.dt-published")
        .and_then(|t| t.value().attr("datetime"))
        .and_then(dates::day);
    let file = part.rsplit('/').next().unwrap_or(part);
    let draft = file.starts_with("draft_") || date.is_none();
    // Medium ids are the hex suffix of the URL slug and of the file name.
    let id = url
        .as_deref()
        .unwrap_or(file.trim_end_matches(".html"))
        .rsplit(['-', '/'])
        .next()
        .unwrap_or(file)
        .trim_end_matches(".html")
        .to_string();
    export.items.push(ExportItem {
        platform: Platform::Medium,
        kind: if title_graf.is_some() {
            Kind::Article
        } else {
            Kind::Comment
        },
        id,
        url,
        date,
        title: title_graf.and(title),
        author: None,
        draft,
        body: Body::Html(body_html),
        part: part.to_string(),
        engagement: None,
    });
}
