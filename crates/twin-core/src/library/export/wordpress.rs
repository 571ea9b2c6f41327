//! WordPress's export (WXR, an RSS file): one `item` per post, page, attachment or menu entry.
//!
//! Only `wp:post_type` post (kind article) and page (kind page) are writing. The body is
//! `content:encoded`: Gutenberg markup (`<!-- wp:paragraph -->` comments around HTML) or
//! classic content, where paragraphs are blank lines with no `<p>` (WordPress adds those
//! when it renders; [`autop`] does the same). `wp:status` publish is published, trash is gone,
//! the rest (draft, pending, private, future) are drafts. `dc:creator` is the author's login,
//! named through the channel's `wp:author` entries. Comments (`wp:comment`) are readers'.

use super::{dates, Body, Export, ExportItem, Kind, Platform};
use quick_xml::events::Event;
use std::collections::HashMap;

#[derive(Default)]
struct Item {
    fields: HashMap<String, String>,
}

/// Wrap classic-editor paragraphs (blank-line separated, no `<p>`) in `<p>`, as WordPress's
/// `wpautop` does when it renders a post (its `<br>` for a single newline is left as the newline).
pub(crate) fn autop(content: &str) -> String {
    if content.contains("<p") || content.contains("<!-- wp:") {
        return content.to_string();
    }
    content
        .replace("\r\n", "\n")
        .split("\n\n")
        .map(str::trim)
        .filter(|p| !p.is_empty())
        // A single newline stays a line break inside the paragraph's text, as in posts.
        .map(|p| format!("<p>{p}</p>"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Read a WXR file's bytes (`part` names it in messages).
pub fn read(bytes: &[u8], part: &str) -> Export {
    let mut export = Export::new(Platform::Wordpress);
    let mut reader = quick_xml::Reader::from_reader(bytes);
    reader.config_mut().trim_text(false);
    let mut buf = Vec::new();
    let mut stack: Vec<String> = Vec::new();
    let mut items: Vec<Item> = Vec::new();
    let mut current: Option<Item> = None;
    let mut authors: HashMap<String, String> = HashMap::new();
    let mut author_login = String::new();
    let mut text = String::new();
    loop {
        let event = match reader.read_event_into(&mut buf) {
            Ok(e) => e,
            Err(e) => {
                export.fail(
                    part,
                    format!(
                        "not well-formed XML at byte {} ({e}); export it again",
                        reader.buffer_position()
                    ),
                );
                break;
            }
        };
        match event {
            Event::Start(e) => {
                let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                if name == "item" {
                    current = Some(Item::default());
                }
                stack.push(name);
                text.clear();
            }
            Event::Text(t) => {
                let raw = String::from_utf8_lossy(t.as_ref()).into_owned();
                text.push_str(&super::decode_entities(&raw));
            }
            Event::CData(t) => text.push_str(&String::from_utf8_lossy(t.as_ref())),
            Event::GeneralRef(r) => {
                let name = String::from_utf8_lossy(r.as_ref()).into_owned();
                text.push_str(&super::decode_entities(&format!("&{name};")));
            }
            Event::End(_) => {
                let Some(name) = stack.pop() else { continue };
                let in_comment = stack
                    .iter()
                    .any(|s| s == "wp:comment" || s == "wp:postmeta");
                match name.as_str() {
                    "item" => {
                        if let Some(item) = current.take() {
                            items.push(item);
                        }
                    }
                    "wp:author_login" => author_login = text.trim().to_string(),
                    "wp:author_display_name" => {
                        authors.insert(author_login.clone(), text.trim().to_string());
                    }
                    _ if !in_comment => {
                        if let Some(item) = current.as_mut() {
                            if stack.last().map(String::as_str) == Some("item") {
                                item.fields.insert(name, std::mem::take(&mut text));
                            }
                        }
                    }
                    _ => {}
                }
                text.clear();
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    if !stack.is_empty() && export.failed.is_empty() {
        export.fail(part, "the file ends inside an element (truncated)");
    }
    for item in items {
        let f = |k: &str| item.fields.get(k).map(|v| v.trim()).unwrap_or("");
        let kind = match f("wp:post_type") {
            "post" => Kind::Article,
            "page" => Kind::Page,
            other => {
                export.skip(&format!(
                    "not a post or page ({})",
                    if other.is_empty() { "no type" } else { other }
                ));
                continue;
            }
        };
        let status = f("wp:status");
        if status == "trash" {
            export.skip("in the trash");
            continue;
        }
        let content = f("content:encoded");
        if content.is_empty() {
            export.skip("empty post");
            continue;
        }
        let login = f("dc:creator");
        let author = authors
            .get(login)
            .cloned()
            .or_else(|| (!login.is_empty()).then(|| login.to_string()));
        if let Some(a) = &author {
            *export.authors.entry(a.clone()).or_default() += 1;
        }
        let date = dates::day(f("wp:post_date_gmt"))
            .or_else(|| dates::day(f("wp:post_date")))
            .or_else(|| dates::day(f("pubDate")));
        let id = f("wp:post_id");
        export.items.push(ExportItem {
            platform: Platform::Wordpress,
            kind,
            id: if id.is_empty() {
                f("guid").to_string()
            } else {
                id.to_string()
            },
            url: Some(f("link").to_string()).filter(|l| !l.is_empty()),
            date,
            title: Some(f("title").to_string()).filter(|t| !t.is_empty()),
            author,
            draft: status != "publish",
            body: Body::Html(autop(content)),
            part: part.to_string(),
            engagement: None,
        });
    }
    export
}

#[cfg(test)]
mod tests {
    #[test]
    fn classic_paragraphs_get_p_tags_and_gutenberg_is_left_alone() {
        assert_eq!(
            super::autop("One.\nStill one.\n\nTwo."),
            "<p>One.\nStill one.</p>\n<p>Two.</p>"
        );
        let g = "<!-- wp:paragraph --><p>Hi</p><!-- /wp:paragraph -->";
        assert_eq!(super::autop(g), g);
    }
}
