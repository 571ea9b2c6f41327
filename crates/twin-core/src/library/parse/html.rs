//! HTML: the main content, not navigation or boilerplate.
//!
//! The content root is the first of `main`, `article`, `[role=main]`, `#content`, `body`; inside it,
//! navigation, headers, footers, asides, scripts, forms and heading anchors are dropped. Pages that
//! ask not to be indexed (`<meta name="robots" content="noindex">`, as print views and redirect
//! stubs do) are skipped, since their text is either elsewhere or absent.

use super::{Block, BlockKind, ParseError, ParsedDoc};
use scraper::{ElementRef, Html, Node, Selector};

const SKIP_TAGS: &[&str] = &[
    "script", "style", "noscript", "nav", "header", "footer", "aside", "form", "button", "svg",
    "template", "iframe", "select", "input", "textarea", "label", "head", "title", "meta", "link",
    "canvas", "video", "audio",
];
const SKIP_CLASSES: &[&str] = &[
    "anchor",
    "sidebar",
    "breadcrumb",
    "breadcrumbs",
    "menu",
    "toolbar",
    "cookie-banner",
    "share",
    "nav-chapters",
];
const BLOCK_TAGS: &[&str] = &[
    "p",
    "div",
    "section",
    "ul",
    "ol",
    "dl",
    "dt",
    "dd",
    "table",
    "tr",
    "thead",
    "tbody",
    "figure",
    "figcaption",
    "main",
    "article",
    "details",
    "summary",
    "hr",
    "br",
    "body",
    "center",
];

fn selector(s: &str) -> Option<Selector> {
    Selector::parse(s).ok()
}

struct Walker {
    blocks: Vec<Block>,
    buf: String,
    kind: BlockKind,
}

impl Walker {
    fn flush(&mut self) {
        if !self.buf.trim().is_empty() {
            let text = std::mem::take(&mut self.buf);
            self.blocks.push(Block::new(self.kind, text));
        }
        self.buf.clear();
        self.kind = BlockKind::Paragraph;
    }

    fn walk(&mut self, el: ElementRef, quote: bool) {
        let name = el.value().name();
        if SKIP_TAGS.contains(&name)
            || el.value().classes().any(|c| SKIP_CLASSES.contains(&c))
            || el.value().attr("hidden").is_some()
            || el.value().attr("aria-hidden") == Some("true")
        {
            return;
        }
        match name {
            "h1" | "h2" | "h3" | "h4" | "h5" | "h6" => {
                self.flush();
                let level = name.as_bytes()[1] - b'0';
                self.collect_children(el, quote);
                self.kind = BlockKind::Heading(level);
                self.flush();
            }
            "pre" => {
                self.flush();
                self.buf = el.text().collect();
                self.kind = BlockKind::Code;
                self.flush();
            }
            "li" | "blockquote" | "td" | "th" => {
                self.flush();
                let quote = quote || name == "blockquote";
                self.collect_children(el, quote);
                if !matches!(self.kind, BlockKind::Heading(_)) {
                    self.kind = if quote {
                        BlockKind::Quote
                    } else if name == "li" {
                        BlockKind::ListItem
                    } else {
                        BlockKind::Paragraph
                    };
                }
                self.flush();
            }
            _ if BLOCK_TAGS.contains(&name) => {
                self.flush();
                self.collect_children(el, quote);
                if quote {
                    self.kind = BlockKind::Quote;
                }
                self.flush();
            }
            _ => self.collect_children(el, quote),
        }
    }

    fn collect_children(&mut self, el: ElementRef, quote: bool) {
        for child in el.children() {
            match child.value() {
                Node::Text(t) => self.buf.push_str(t),
                Node::Element(_) => {
                    if let Some(e) = ElementRef::wrap(child) {
                        self.walk(e, quote);
                    }
                }
                _ => {}
            }
        }
    }
}

/// Parse an HTML page.
pub fn parse(text: &str) -> Result<ParsedDoc, ParseError> {
    let html = Html::parse_document(text);
    if let Some(sel) = selector("meta[name=robots]") {
        if html.select(&sel).any(|m| {
            m.value()
                .attr("content")
                .is_some_and(|c| c.to_ascii_lowercase().contains("noindex"))
        }) {
            return Err(ParseError::Skip(
                "the page is marked noindex (a print view or redirect stub)".into(),
            ));
        }
    }
    let root = ["main", "article", "[role=main]", "#content", "body"]
        .iter()
        .filter_map(|s| selector(s))
        .find_map(|sel| html.select(&sel).next());
    let Some(root) = root else {
        return Ok(ParsedDoc::default());
    };
    let mut walker = Walker {
        blocks: Vec::new(),
        buf: String::new(),
        kind: BlockKind::Paragraph,
    };
    walker.walk(root, false);
    walker.flush();
    let title = walker
        .blocks
        .iter()
        .find(|b| b.kind == BlockKind::Heading(1))
        .map(|b| b.text.split_whitespace().collect::<Vec<_>>().join(" "))
        .or_else(|| {
            let sel = selector("title")?;
            let t: String = html.select(&sel).next()?.text().collect();
            Some(t.split(" - ").next().unwrap_or(&t).trim().to_string())
        })
        .filter(|t| !t.is_empty());
    let date =
        selector("meta[property='article:published_time'], time[datetime]").and_then(|sel| {
            let el = html.select(&sel).next()?;
            let v = el
                .value()
                .attr("content")
                .or_else(|| el.value().attr("datetime"))?;
            super::normalize_date(v)
        });
    Ok(ParsedDoc {
        title,
        date,
        blocks: walker.blocks,
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_main_content_and_drops_navigation() {
        let page = r##"<html><head><title>Ownership - The Book</title></head><body>
            <nav class="sidebar"><a href="/">Home</a><a>Chapter 1</a></nav>
            <header>Site header</header>
            <main><h1>What Is Ownership?<a class="anchor" href="#x">§</a></h1>
            <p>Ownership is a set of <em>rules</em>.</p>
            <ul><li>Each value has an owner.</li><li>One owner at a time.</li></ul>
            <pre><code>let s = String::from("hi");</code></pre>
            <script>track()</script></main>
            <footer>Copyright</footer></body></html>"##;
        let doc = parse(page).unwrap();
        assert_eq!(doc.title.as_deref(), Some("What Is Ownership?"));
        let texts: Vec<&str> = doc.blocks.iter().map(|b| b.text.trim()).collect();
        assert_eq!(
            texts,
            vec![
                "What Is Ownership?",
                "Ownership is a set of rules.",
                "Each value has an owner.",
                "One owner at a time.",
                "let s = String::from(\"hi\");"
            ]
        );
        assert_eq!(doc.blocks[4].kind, BlockKind::Code);
    }

    #[test]
    fn noindex_pages_are_skipped() {
        let err = parse(
            r#"<html><head><meta name="robots" content="noindex"></head><body>x</body></html>"#,
        );
        assert!(matches!(err, Err(ParseError::Skip(_))));
    }
}
