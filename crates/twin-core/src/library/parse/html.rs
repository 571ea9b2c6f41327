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

/// Deepest element nesting Twin reads. Real pages stay under ~100 levels; the HTML tree builder
/// rescans its stack of open elements for each new one (quadratic in depth) and the block walk
/// below recurses per level, so a page nested thousands deep is refused before either runs.
const MAX_DEPTH: usize = 1024;

/// Elements whose end tag may be left out (HTML's optional end tags) or that have none: they do
/// not count towards nesting, so a long list of unclosed `<li>` is not "deep".
const UNNESTED: &[&str] = &[
    "p", "li", "dt", "dd", "tr", "td", "th", "option", "optgroup", "thead", "tbody", "tfoot",
    "colgroup", "caption", "rb", "rt", "rtc", "rp", "html", "head", "body", "area", "base", "br",
    "col", "embed", "hr", "img", "input", "link", "meta", "param", "source", "track", "wbr",
];

/// The deepest nesting of elements in `text`, counted from its tags in one pass (no tree), and
/// stopping as soon as it passes `limit`.
fn nesting_depth(text: &str, limit: usize) -> usize {
    let bytes = text.as_bytes();
    let (mut depth, mut max, mut i) = (0usize, 0usize, 0usize);
    while let Some(off) = memchr_lt(&bytes[i..]) {
        i += off + 1;
        let closing = bytes.get(i) == Some(&b'/');
        let start = if closing { i + 1 } else { i };
        let name_len = bytes[start..]
            .iter()
            .take_while(|b| b.is_ascii_alphanumeric())
            .count();
        if name_len == 0 {
            continue; // comment, doctype, processing instruction or a stray "<"
        }
        let name = text[start..start + name_len].to_ascii_lowercase();
        if UNNESTED.contains(&name.as_str()) {
            continue;
        }
        let end = bytes[start..]
            .iter()
            .position(|&b| b == b'>')
            .map_or(bytes.len(), |p| start + p);
        if closing {
            depth = depth.saturating_sub(1);
        } else if end > 0 && bytes[end - 1] != b'/' {
            depth += 1;
            max = max.max(depth);
            if max > limit {
                break;
            }
        }
        i = end.min(bytes.len());
    }
    max
}

fn memchr_lt(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|&b| b == b'<')
}

/// Parse an HTML page.
pub fn parse(text: &str) -> Result<ParsedDoc, ParseError> {
    let depth = nesting_depth(text, MAX_DEPTH);
    if depth > MAX_DEPTH {
        return Err(ParseError::Invalid(format!(
            "elements nested over {MAX_DEPTH} levels deep; not a page Twin can read safely"
        )));
    }
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

    #[test]
    fn pages_nested_too_deep_are_refused_at_once_and_lists_are_not_deep() {
        let deep = format!("{}x{}", "<div>".repeat(300_000), "</div>".repeat(300_000));
        let started = std::time::Instant::now();
        let err = super::parse(&deep).unwrap_err();
        assert!(err.to_string().contains("nested over 1024"), "{err}");
        assert!(started.elapsed().as_secs() < 2, "{:?}", started.elapsed());
        let nested = format!(
            "{}<p>deep but fine</p>{}",
            "<div>".repeat(1000),
            "</div>".repeat(1000)
        );
        assert_eq!(super::parse(&nested).unwrap().blocks.len(), 1);
        let list = format!("<ul>{}</ul>", "<li>item".repeat(5000));
        assert_eq!(super::nesting_depth(&list, 1024), 1);
        assert_eq!(super::nesting_depth("<a><b/><c></c></a>", 1024), 2);
    }

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
