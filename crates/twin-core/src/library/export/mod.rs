//! Platform exports: the archives LinkedIn, X, Medium and Substack hand out, and the export
//! files of WordPress and Ghost, read into the user's own posts.
//!
//! An export is recognised by what it holds, not by its name: a `.zip` as downloaded, the
//! folder it unpacks to, or (WordPress, Ghost) the bare `.xml` / `.json` file. Each reader
//! yields [`ExportItem`]s, one per piece of writing, keyed by the platform's own id so that a
//! newer export of the same account updates the library in place. What is not the user's
//! writing (reposts, retweets, likes, messages, other authors' posts, subscribe buttons) never
//! becomes an item; drafts become items marked [`ExportItem::draft`], left out unless asked for.
//! Everything skipped is counted with its reason, and a damaged part names the file inside
//! the archive.

mod archive;
mod dates;
mod ghost;
mod linkedin;
mod medium;
mod substack;
mod wordpress;
mod x;

pub use archive::Archive;

use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

/// The platforms Twin reads exports from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    /// LinkedIn's "Get a copy of your data".
    Linkedin,
    /// X (Twitter) archive.
    X,
    /// Medium's export.
    Medium,
    /// Substack's export.
    Substack,
    /// WordPress's WXR export.
    Wordpress,
    /// Ghost's JSON export.
    Ghost,
}

impl Platform {
    /// The name stored in `documents.platform`.
    pub fn as_str(self) -> &'static str {
        match self {
            Platform::Linkedin => "linkedin",
            Platform::X => "x",
            Platform::Medium => "medium",
            Platform::Substack => "substack",
            Platform::Wordpress => "wordpress",
            Platform::Ghost => "ghost",
        }
    }
}

/// What kind of writing an item is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A short post (LinkedIn share, single X post, a blog post).
    Post,
    /// A long-form article.
    Article,
    /// A newsletter issue.
    Newsletter,
    /// Several X posts replying to each other, joined in order.
    Thread,
    /// A reply to someone else's X post.
    Reply,
    /// A comment or response on someone's post.
    Comment,
    /// A static page (About, Contact): not used for drafts by default.
    Page,
}

impl Kind {
    /// The name stored in `documents.kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Post => "post",
            Kind::Article => "article",
            Kind::Newsletter => "newsletter",
            Kind::Thread => "thread",
            Kind::Reply => "reply",
            Kind::Comment => "comment",
            Kind::Page => "page",
        }
    }
}

/// An item's text as the platform stores it.
#[derive(Clone, Debug, PartialEq)]
pub enum Body {
    /// Plain text; paragraphs separated by blank lines.
    Text(String),
    /// An HTML fragment.
    Html(String),
}

/// One piece of the user's writing from an export.
#[derive(Clone, Debug)]
pub struct ExportItem {
    /// Where it was published.
    pub platform: Platform,
    /// Post, article, thread…
    pub kind: Kind,
    /// The platform's own id (stable across exports of the same account).
    pub id: String,
    /// Canonical URL, when the export gives one.
    pub url: Option<String>,
    /// Publication date, `YYYY-MM-DD`.
    pub date: Option<String>,
    /// Title, for articles and blog posts.
    pub title: Option<String>,
    /// The author as the export names them (multi-author exports only).
    pub author: Option<String>,
    /// An unpublished draft.
    pub draft: bool,
    /// The text.
    pub body: Body,
    /// The file inside the export it came from.
    pub part: String,
    /// How it was received, where the export says: X likes + reposts, Substack email opens.
    pub engagement: Option<i64>,
}

/// A part of an export that could not be read, named by its path inside the export.
#[derive(Clone, Debug, Serialize, PartialEq, ts_rs::TS)]
#[ts(export)]
pub struct PartError {
    /// The file inside the archive or folder (`Shares.csv`, `data/tweets.js`).
    pub part: String,
    /// Why.
    pub reason: String,
}

/// Everything read from one export.
#[derive(Clone, Debug)]
pub struct Export {
    /// The platform.
    pub platform: Platform,
    /// The user's writing, drafts included (marked).
    pub items: Vec<ExportItem>,
    /// What was left out and why, counted ("repost without commentary": 12).
    pub skipped: BTreeMap<String, usize>,
    /// Parts that could not be read; the rest of the export still imports.
    pub failed: Vec<PartError>,
    /// Authors named in a multi-author export, with their item counts.
    pub authors: BTreeMap<String, usize>,
}

impl Export {
    /// Every item with an id: one its export did not give (a WordPress item without
    /// `wp:post_id` or `guid`, found by fuzzing) gets one from its content, so two such items
    /// never share a document and the same item keeps its id in the next export.
    fn with_ids(mut self) -> Self {
        for item in self.items.iter_mut().filter(|i| i.id.trim().is_empty()) {
            let body = match &item.body {
                Body::Text(t) | Body::Html(t) => t.as_str(),
            };
            let mut h = blake3::Hasher::new();
            for part in [
                item.kind.as_str(),
                item.title.as_deref().unwrap_or(""),
                item.date.as_deref().unwrap_or(""),
                body,
            ] {
                h.update(part.as_bytes());
                h.update(&[0]);
            }
            item.id = format!("content-{}", &h.finalize().to_hex()[..16]);
        }
        self
    }

    fn new(platform: Platform) -> Self {
        Export {
            platform,
            items: Vec::new(),
            skipped: BTreeMap::new(),
            failed: Vec::new(),
            authors: BTreeMap::new(),
        }
    }

    /// Count one left-out item under `reason`.
    fn skip(&mut self, reason: &str) {
        *self.skipped.entry(reason.to_string()).or_default() += 1;
    }

    fn fail(&mut self, part: &str, reason: impl Into<String>) {
        self.failed.push(PartError {
            part: part.to_string(),
            reason: reason.into(),
        });
    }

    /// Keep only the items written by one of `names` (case-insensitive; empty keeps all),
    /// drafts only when `include_drafts` and static pages only when `include_pages` (an About
    /// page is not writing to search or imitate); what goes is counted in [`Export::skipped`].
    pub fn select(&mut self, names: &[String], include_drafts: bool, include_pages: bool) {
        let mine = |author: &Option<String>| {
            names.is_empty()
                || author.as_ref().is_none_or(|a| {
                    names
                        .iter()
                        .any(|n| n.trim().eq_ignore_ascii_case(a.trim()))
                })
        };
        let mut kept = Vec::with_capacity(self.items.len());
        for item in std::mem::take(&mut self.items) {
            if !mine(&item.author) {
                self.skip("written by another author");
            } else if item.draft && !include_drafts {
                self.skip("draft (import with --include-drafts)");
            } else if item.kind == Kind::Page && !include_pages {
                self.skip("page (import with --include-pages)");
            } else {
                kept.push(item);
            }
        }
        self.items = kept;
    }
}

/// Why an export could not be read at all.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The archive itself is damaged (a truncated zip) or unreadable.
    #[error("{0}")]
    Archive(String),
}

/// Whether `path` may be an export worth opening: a folder, or a file whose extension an
/// export can have. Cheap; [`read`] decides by content.
pub fn may_be_export(path: &Path) -> bool {
    if path.is_dir() {
        return true;
    }
    matches!(
        path.extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("zip" | "xml" | "json")
    )
}

/// Whether the folder `dir` is an unpacked export. Called for every folder a scan walks, so
/// it looks only for each platform's marker files, a few `stat`s.
pub fn is_export_folder(dir: &Path) -> bool {
    let has = |rel: &str| dir.join(rel).exists();
    if has("Shares.csv") || has("Comments.csv") || has("Articles/Articles") {
        return true;
    }
    if has("data/tweets.js") || has("data/tweet.js") || has("data/account.js") {
        return true;
    }
    if has("posts.csv") && has("posts") {
        return true;
    }
    // Medium: posts/ beside profile/profile.html.
    has("posts") && has("profile/profile.html")
}

/// Which platform's export `archive` holds, judged by its files.
fn detect(archive: &Archive) -> Option<Platform> {
    if archive.find("Shares.csv").is_some()
        || archive.find("Comments.csv").is_some()
        || archive.names().any(|n| n.contains("Articles/Articles/"))
    {
        return Some(Platform::Linkedin);
    }
    if ["data/tweets.js", "data/tweet.js", "data/account.js"]
        .iter()
        .any(|m| archive.find(m).is_some())
    {
        return Some(Platform::X);
    }
    if archive.find("posts.csv").is_some() {
        return Some(Platform::Substack);
    }
    if archive
        .names()
        .any(|n| medium::is_post_path(n) || n.ends_with("profile/profile.html"))
    {
        return Some(Platform::Medium);
    }
    None
}

/// Read the export at `path` (zip, folder, or a bare WordPress / Ghost file). `Ok(None)` when
/// it is not an export Twin knows; then it is an ordinary file (or an unsupported one).
pub fn read(path: &Path) -> Result<Option<Export>, ExportError> {
    let _span = tracing::info_span!("export", path = %path.display()).entered();
    Ok(read_any(path)?.map(Export::with_ids))
}

fn read_any(path: &Path) -> Result<Option<Export>, ExportError> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("xml") | Some("json") if path.is_file() => {
            // Most .xml and .json files are not exports: decide on the first 4 KiB.
            if !looks_like_single(&archive::read_head(path, 4096)?) {
                return Ok(None);
            }
            let bytes = archive::read_capped(path)?;
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
            return Ok(read_single(&bytes, name.as_deref().unwrap_or("export")));
        }
        _ => {}
    }
    let mut archive = if path.is_dir() {
        Archive::folder(path)?
    } else {
        Archive::zip(path)?
    };
    let export = match detect(&archive) {
        Some(Platform::Linkedin) => linkedin::read(&mut archive),
        Some(Platform::X) => x::read(&mut archive),
        Some(Platform::Medium) => medium::read(&mut archive),
        Some(Platform::Substack) => substack::read(&mut archive),
        Some(Platform::Wordpress | Platform::Ghost) | None => {
            // WordPress.com and Ghost(Pro) hand out their single file zipped.
            let single: Vec<String> = archive
                .names()
                .filter(|n| n.ends_with(".xml") || n.ends_with(".json"))
                .map(str::to_string)
                .collect();
            let mut found = None;
            for name in single {
                let bytes = match archive.read(&name) {
                    Ok(b) => b,
                    Err(e) => {
                        let mut export = Export::new(Platform::Wordpress);
                        export.fail(&name, e.to_string());
                        return Ok(Some(export));
                    }
                };
                if let Some(e) = read_single(&bytes, &name) {
                    found = Some(e);
                    break;
                }
            }
            return Ok(found);
        }
    };
    Ok(Some(export))
}

fn is_wxr(head: &str) -> bool {
    head.contains("<rss") && head.contains("wordpress.org/export")
}

fn is_ghost(head: &str) -> bool {
    head.trim_start().starts_with('{') && head.contains("\"db\"")
}

fn looks_like_single(head: &[u8]) -> bool {
    let head = String::from_utf8_lossy(head);
    is_wxr(&head) || is_ghost(&head)
}

/// A WordPress WXR or Ghost JSON file's bytes, recognised by content.
fn read_single(bytes: &[u8], part: &str) -> Option<Export> {
    let head = String::from_utf8_lossy(&bytes[..bytes.len().min(4096)]);
    if is_wxr(&head) {
        return Some(wordpress::read(bytes, part));
    }
    if is_ghost(&head) {
        return Some(ghost::read(bytes, part));
    }
    None
}

/// Decode the few HTML entities platforms leave in plain text (`&amp;`, `&lt;`, `&#39;`…).
pub(crate) fn decode_entities(text: &str) -> String {
    if !text.contains('&') {
        return text.to_string();
    }
    quick_xml::escape::unescape(text)
        .map(|c| c.into_owned())
        .unwrap_or_else(|_| {
            text.replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&quot;", "\"")
                .replace("&#39;", "'")
                .replace("&amp;", "&")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(author: Option<&str>, draft: bool) -> ExportItem {
        ExportItem {
            platform: Platform::Wordpress,
            kind: Kind::Post,
            id: "1".into(),
            url: None,
            date: None,
            title: None,
            author: author.map(str::to_string),
            draft,
            body: Body::Text("x".into()),
            part: "export.xml".into(),
            engagement: None,
        }
    }

    #[test]
    fn select_keeps_the_users_published_items_and_counts_the_rest() {
        let mut e = Export::new(Platform::Wordpress);
        e.items = vec![
            item(Some("Nell Hart"), false),
            item(Some("sam"), false),
            item(Some("nell hart"), true),
            item(None, false),
        ];
        e.select(&["Nell Hart".into()], false, false);
        assert_eq!(e.items.len(), 2);
        assert_eq!(e.skipped["written by another author"], 1);
        assert_eq!(e.skipped["draft (import with --include-drafts)"], 1);
    }

    #[test]
    fn entities_are_decoded() {
        assert_eq!(decode_entities("a &amp; b &lt;3 &gt;"), "a & b <3 >");
        assert_eq!(decode_entities("5 & 6"), "5 & 6");
    }
}
