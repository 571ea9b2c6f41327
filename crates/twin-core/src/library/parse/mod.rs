//! Parsers: file bytes → a [`ParsedDoc`] of structured blocks (headings, paragraphs, list items,
//! quotes, code). One module per format; they share the block model so cleaning and chunking
//! never care where text came from.

mod docx;
mod html;
mod markdown;
mod pdf;
mod text;

use std::path::Path;

/// The structural role of a block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockKind {
    /// A heading of level 1–6.
    Heading(u8),
    /// A paragraph of prose.
    Paragraph,
    /// One item of a list.
    ListItem,
    /// Quoted text (someone else's words, usually).
    Quote,
    /// Code or preformatted text.
    Code,
}

/// A block of text with its role.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Block {
    /// Role.
    pub kind: BlockKind,
    /// Text (not yet cleaned).
    pub text: String,
}

impl Block {
    /// A block of `kind` holding `text`.
    pub fn new(kind: BlockKind, text: impl Into<String>) -> Self {
        Self {
            kind,
            text: text.into(),
        }
    }
}

/// What a parser extracted from one file.
#[derive(Clone, Debug, Default)]
pub struct ParsedDoc {
    /// Title, when the file states one.
    pub title: Option<String>,
    /// Date as `YYYY-MM-DD`, when the file states one.
    pub date: Option<String>,
    /// Tags from front matter.
    pub tags: Vec<String>,
    /// Platform from front matter (`linkedin`, `x`, `blog`, `newsletter`, …).
    pub platform: Option<String>,
    /// The content, in order.
    pub blocks: Vec<Block>,
}

/// Formats Twin reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Markdown, with optional YAML front matter.
    Markdown,
    /// Plain text.
    Text,
    /// HTML.
    Html,
    /// Word .docx.
    Docx,
    /// PDF (text layer).
    Pdf,
}

impl Format {
    /// The format for `path`'s extension, or `None` if Twin does not read it.
    pub fn of(path: &Path) -> Option<Format> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        Some(match ext.as_str() {
            "md" | "markdown" | "mdown" | "mkd" => Format::Markdown,
            "txt" | "text" => Format::Text,
            "html" | "htm" | "xhtml" => Format::Html,
            "docx" => Format::Docx,
            "pdf" => Format::Pdf,
            _ => return None,
        })
    }

    /// Lower-case name stored with documents.
    pub fn name(self) -> &'static str {
        match self {
            Format::Markdown => "markdown",
            Format::Text => "text",
            Format::Html => "html",
            Format::Docx => "docx",
            Format::Pdf => "pdf",
        }
    }
}

/// Why a file could not be parsed.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// The file is damaged or not what its extension says.
    #[error("{0}")]
    Invalid(String),
    /// The file is fine but deliberately not imported (e.g. a page marked noindex).
    #[error("{0}")]
    Skip(String),
}

/// Decode text-format bytes, refusing binary content and invalid UTF-8 with a precise reason.
fn decode_text(bytes: &[u8], format: Format) -> Result<&str, ParseError> {
    let head = &bytes[..bytes.len().min(8192)];
    if head.contains(&0) {
        return Err(ParseError::Invalid(format!(
            "binary content (NUL bytes) in a file named as {}",
            format.name()
        )));
    }
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    std::str::from_utf8(bytes).map_err(|e| {
        let at = e.valid_up_to();
        ParseError::Invalid(format!(
            "not valid UTF-8 (byte 0x{:02X} at offset {at}); save the file as UTF-8",
            bytes.get(at).copied().unwrap_or(0)
        ))
    })
}

/// Parse `bytes` as `format`. A parser that panics on a file it cannot handle fails that file
/// alone: the panic is contained here, so one bad file never stops an import or poisons the
/// app's library lock.
pub fn parse(format: Format, bytes: &[u8]) -> Result<ParsedDoc, ParseError> {
    std::panic::catch_unwind(|| parse_unguarded(format, bytes)).unwrap_or_else(|_| {
        Err(ParseError::Invalid(format!(
            "the {} parser crashed on this file; it was skipped",
            format.name()
        )))
    })
}

fn parse_unguarded(format: Format, bytes: &[u8]) -> Result<ParsedDoc, ParseError> {
    match format {
        Format::Markdown => Ok(markdown::parse(decode_text(bytes, format)?)),
        Format::Text => Ok(text::parse(decode_text(bytes, format)?)),
        Format::Html => html::parse(decode_text(bytes, format)?),
        Format::Docx => docx::parse(bytes),
        Format::Pdf => pdf::parse(bytes),
    }
}

/// Normalise a date-ish string (`2024-03-05`, `2024-03-05T10:00:00Z`, `2024/03/05`) to `YYYY-MM-DD`.
pub fn normalize_date(s: &str) -> Option<String> {
    let s = s.trim().trim_matches('"');
    let d = s.get(..10)?.replace('/', "-");
    let parts: Vec<&str> = d.split('-').collect();
    if parts.len() == 3
        && parts[0].len() == 4
        && parts.iter().all(|p| p.chars().all(|c| c.is_ascii_digit()))
        && (1..=12).contains(&parts[1].parse::<u32>().ok()?)
        && (1..=31).contains(&parts[2].parse::<u32>().ok()?)
    {
        Some(d)
    } else {
        None
    }
}

/// Paragraph blocks from text separated by blank lines; shared by the text and PDF parsers.
fn paragraphs(text: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut current: Vec<&str> = Vec::new();
    for line in text.lines().chain(std::iter::once("")) {
        if line.trim().is_empty() {
            if !current.is_empty() {
                blocks.push(Block::new(BlockKind::Paragraph, current.join("\n")));
                current.clear();
            }
        } else {
            current.push(line);
        }
    }
    blocks
}
