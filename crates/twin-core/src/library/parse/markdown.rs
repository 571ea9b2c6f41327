//! Markdown with optional YAML front matter (title, date, tags, platform), via pulldown-cmark.

use super::{normalize_date, Block, BlockKind, ParsedDoc};
use pulldown_cmark::{Event, HeadingLevel, Options, Parser, Tag, TagEnd};

/// Split `---` YAML front matter from the rest.
fn split_front_matter(text: &str) -> (Option<&str>, &str) {
    let Some(rest) = text
        .strip_prefix("---\n")
        .or_else(|| text.strip_prefix("---\r\n"))
    else {
        return (None, text);
    };
    let mut offset = 0;
    for line in rest.split_inclusive('\n') {
        if line.trim_end() == "---" || line.trim_end() == "..." {
            return (Some(&rest[..offset]), &rest[offset + line.len()..]);
        }
        offset += line.len();
    }
    (None, text)
}

fn yaml_string(v: &serde_yaml_ng::Value) -> Option<String> {
    match v {
        serde_yaml_ng::Value::String(s) => Some(s.clone()),
        serde_yaml_ng::Value::Number(n) => Some(n.to_string()),
        serde_yaml_ng::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn apply_front_matter(yaml: &str, doc: &mut ParsedDoc) {
    let value: serde_yaml_ng::Value = match serde_yaml_ng::from_str(yaml) {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(error = %e, "front matter is not valid YAML; ignoring it");
            return;
        }
    };
    let get = |k: &str| {
        value
            .get(k)
            .and_then(yaml_string)
            .filter(|s| !s.trim().is_empty())
    };
    doc.title = get("title").map(|s| s.trim().to_string());
    doc.date = get("date").as_deref().and_then(normalize_date);
    doc.platform = get("platform").map(|p| p.trim().to_lowercase());
    doc.tags = match value.get("tags") {
        Some(serde_yaml_ng::Value::Sequence(items)) => {
            items.iter().filter_map(yaml_string).collect()
        }
        Some(v) => yaml_string(v)
            .map(|s| {
                s.split(',')
                    .map(|t| t.trim().to_string())
                    .filter(|t| !t.is_empty())
                    .collect()
            })
            .unwrap_or_default(),
        None => Vec::new(),
    };
}

fn level(l: HeadingLevel) -> u8 {
    match l {
        HeadingLevel::H1 => 1,
        HeadingLevel::H2 => 2,
        HeadingLevel::H3 => 3,
        HeadingLevel::H4 => 4,
        HeadingLevel::H5 => 5,
        HeadingLevel::H6 => 6,
    }
}

/// Parse Markdown.
pub fn parse(text: &str) -> ParsedDoc {
    let (front, body) = split_front_matter(text);
    let mut doc = ParsedDoc::default();
    if let Some(yaml) = front {
        apply_front_matter(yaml, &mut doc);
    }
    let mut blocks: Vec<Block> = Vec::new();
    let mut buf = String::new();
    let mut quote_depth = 0usize;
    let mut item_depth = 0usize;
    let kind_now = |quote: usize, item: usize| {
        if quote > 0 {
            BlockKind::Quote
        } else if item > 0 {
            BlockKind::ListItem
        } else {
            BlockKind::Paragraph
        }
    };
    let flush = |buf: &mut String, kind: BlockKind, blocks: &mut Vec<Block>| {
        if !buf.trim().is_empty() {
            blocks.push(Block::new(kind, std::mem::take(buf)));
        }
        buf.clear();
    };
    let options =
        Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH | Options::ENABLE_FOOTNOTES;
    for event in Parser::new_ext(body, options) {
        match event {
            Event::Start(Tag::Heading { .. }) | Event::Start(Tag::CodeBlock(_)) => {
                flush(&mut buf, kind_now(quote_depth, item_depth), &mut blocks)
            }
            Event::End(TagEnd::Heading(l)) => {
                flush(&mut buf, BlockKind::Heading(level(l)), &mut blocks)
            }
            Event::End(TagEnd::CodeBlock) => flush(&mut buf, BlockKind::Code, &mut blocks),
            Event::Start(Tag::BlockQuote(_)) => {
                flush(&mut buf, kind_now(quote_depth, item_depth), &mut blocks);
                quote_depth += 1;
            }
            Event::End(TagEnd::BlockQuote(_)) => {
                flush(&mut buf, kind_now(quote_depth, item_depth), &mut blocks);
                quote_depth = quote_depth.saturating_sub(1);
            }
            Event::Start(Tag::Item) => {
                flush(&mut buf, kind_now(quote_depth, item_depth), &mut blocks);
                item_depth += 1;
            }
            Event::End(TagEnd::Item) => {
                flush(&mut buf, kind_now(quote_depth, item_depth), &mut blocks);
                item_depth = item_depth.saturating_sub(1);
            }
            Event::End(TagEnd::Paragraph)
            | Event::End(TagEnd::TableRow)
            | Event::End(TagEnd::TableHead) => {
                flush(&mut buf, kind_now(quote_depth, item_depth), &mut blocks)
            }
            Event::End(TagEnd::TableCell) => buf.push_str(" | "),
            Event::Text(t) | Event::Code(t) => buf.push_str(&t),
            Event::SoftBreak | Event::HardBreak => buf.push('\n'),
            _ => {}
        }
    }
    flush(&mut buf, kind_now(quote_depth, item_depth), &mut blocks);
    if doc.title.is_none() {
        doc.title = blocks
            .iter()
            .find(|b| b.kind == BlockKind::Heading(1))
            .map(|b| b.text.trim().to_string());
    }
    doc.blocks = blocks;
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn front_matter_and_structure() {
        let doc = parse(
            "---\ntitle: \"Ship it\"\ndate: 2024-03-05\nplatform: LinkedIn\ntags: [craft, teams]\n---\n\
             # Heading\n\nFirst line\nsecond line.\n\n- one\n- two\n\n> quoted\n\n```\ncode()\n```\n",
        );
        assert_eq!(doc.title.as_deref(), Some("Ship it"));
        assert_eq!(doc.date.as_deref(), Some("2024-03-05"));
        assert_eq!(doc.platform.as_deref(), Some("linkedin"));
        assert_eq!(doc.tags, vec!["craft", "teams"]);
        let kinds: Vec<BlockKind> = doc.blocks.iter().map(|b| b.kind).collect();
        assert_eq!(
            kinds,
            vec![
                BlockKind::Heading(1),
                BlockKind::Paragraph,
                BlockKind::ListItem,
                BlockKind::ListItem,
                BlockKind::Quote,
                BlockKind::Code
            ]
        );
        assert_eq!(doc.blocks[1].text, "First line\nsecond line.");
    }

    #[test]
    fn broken_front_matter_is_ignored_not_fatal() {
        let doc = parse("---\ntitle: [unclosed\n---\n# Real title\n\nText.");
        assert_eq!(doc.title.as_deref(), Some("Real title"));
        assert_eq!(doc.blocks.len(), 2);
    }
}
