//! Substack's export: `posts.csv` (`post_id,post_date,is_published,…,type,audience,title,
//! subtitle`) and `posts/<post_id>.html`, the body of each post.
//!
//! Unpublished rows are drafts; a `page` is not a post; subscribe, share and "Leave a
//! comment" buttons inside a body are furniture, not writing. Subscriber lists
//! (`email_list*.csv`) are never opened; of the per-post statistics only `*.opens.csv` is, and
//! only its rows are counted (a post's email opens, how it was received): no address is kept.

use super::{dates, Archive, Body, Export, ExportItem, Kind, Platform};
use scraper::{Html, Selector};

/// Classes of Substack's buttons and widgets inside a post body.
const FURNITURE: &str = ".subscription-widget-wrap, .subscription-widget, .button-wrapper, \
    .captioned-button-wrap, .share-dialog, .subscribe-widget, .footnote-anchor";

/// A body without Substack's buttons and widgets.
pub(crate) fn strip_furniture(html: &str) -> String {
    let doc = Html::parse_fragment(html);
    let mut out = html.to_string();
    if let Ok(sel) = Selector::parse(FURNITURE) {
        for el in doc.select(&sel) {
            out = out.replacen(&el.html(), "", 1);
        }
    }
    out
}

/// The rows of a post's `opens.csv` (one per email open), if the export has it.
fn opens(archive: &mut Archive, name: &str) -> Option<i64> {
    let text = archive.read_text(name).ok()?;
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(text.as_bytes());
    Some(reader.records().filter(Result::is_ok).count() as i64)
}

/// Read `posts.csv` and the bodies it names.
pub fn read(archive: &mut Archive) -> Export {
    let mut export = Export::new(Platform::Substack);
    let Some(csv_name) = archive.find("posts.csv") else {
        return export;
    };
    let prefix = archive.prefix_of("posts.csv").unwrap_or_default();
    let text = match archive.read_text(&csv_name) {
        Ok(t) => t,
        Err(e) => {
            export.fail(&csv_name, e);
            return export;
        }
    };
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(text.as_bytes());
    let headers = match reader.headers() {
        Ok(h) => h.clone(),
        Err(e) => {
            export.fail(&csv_name, e.to_string());
            return export;
        }
    };
    let col = |name: &str| headers.iter().position(|h| h.trim() == name);
    let (Some(c_id), Some(c_date), Some(c_published)) =
        (col("post_id"), col("post_date"), col("is_published"))
    else {
        export.fail(
            &csv_name,
            format!(
                "missing column post_id, post_date or is_published (found: {})",
                headers.iter().collect::<Vec<_>>().join(", ")
            ),
        );
        return export;
    };
    let (c_type, c_title, c_subtitle) = (col("type"), col("title"), col("subtitle"));
    for (row, record) in reader.records().enumerate() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                export.fail(&csv_name, format!("row {}: {e}", row + 2));
                continue;
            }
        };
        let get = |c: Option<usize>| c.and_then(|c| record.get(c)).unwrap_or("").trim();
        let id = get(Some(c_id)).to_string();
        let kind = get(c_type);
        if kind == "page" {
            export.skip("page (not a post)");
            continue;
        }
        if kind == "podcast" {
            export.skip("podcast episode (audio)");
            continue;
        }
        let body_name = format!("{prefix}posts/{id}.html");
        let body = match archive.read_text(&body_name) {
            Ok(b) => strip_furniture(&b),
            Err(_) => {
                export.skip("no body file for the post");
                continue;
            }
        };
        let title = get(c_title);
        let subtitle = get(c_subtitle);
        let body = if subtitle.is_empty() {
            body
        } else {
            format!(
                "<p><em>{}</em></p>{body}",
                quick_xml::escape::escape(subtitle)
            )
        };
        export.items.push(ExportItem {
            platform: Platform::Substack,
            kind: Kind::Newsletter,
            id: id.split('.').next().unwrap_or(&id).to_string(),
            url: None,
            date: dates::day(get(Some(c_date))),
            title: (!title.is_empty()).then(|| title.to_string()),
            author: None,
            draft: !get(Some(c_published)).eq_ignore_ascii_case("true"),
            body: Body::Html(body),
            engagement: opens(archive, &format!("{prefix}posts/{id}.opens.csv")),
            part: body_name,
        });
    }
    export
}
