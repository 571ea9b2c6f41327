//! Parsers: file bytes → a [`ParsedDoc`] of structured blocks (headings, paragraphs, list items,
//! quotes, code). One module per format; they share the block model so cleaning and chunking
//! never care where text came from.

mod docx;
mod html;
mod markdown;
mod pdf;
mod text;
pub mod worker;

use std::borrow::Cow;
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

/// Decode text-format bytes: UTF-8 (a BOM is dropped) or UTF-16 with its BOM (what Windows
/// Notepad saves as "Unicode"); binary content and invalid UTF-8 are refused with a precise
/// reason.
fn decode_text(bytes: &[u8], format: Format) -> Result<Cow<'_, str>, ParseError> {
    if let Some(text) = decode_utf16(bytes) {
        return text.map(Cow::Owned);
    }
    let head = &bytes[..bytes.len().min(8192)];
    if head.contains(&0) {
        return Err(ParseError::Invalid(format!(
            "binary content (NUL bytes) in a file named as {}",
            format.name()
        )));
    }
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    std::str::from_utf8(bytes).map(Cow::Borrowed).map_err(|e| {
        let at = e.valid_up_to();
        ParseError::Invalid(format!(
            "not valid UTF-8 (byte 0x{:02X} at offset {at}); save the file as UTF-8",
            bytes.get(at).copied().unwrap_or(0)
        ))
    })
}

/// UTF-16 text, when `bytes` open with a UTF-16 byte-order mark.
fn decode_utf16(bytes: &[u8]) -> Option<Result<String, ParseError>> {
    let (body, little) = match bytes {
        [0xFF, 0xFE, rest @ ..] => (rest, true),
        [0xFE, 0xFF, rest @ ..] => (rest, false),
        _ => return None,
    };
    if body.len() % 2 != 0 {
        return Some(Err(ParseError::Invalid(
            "UTF-16 text with an odd number of bytes (truncated?)".into(),
        )));
    }
    let units = body.chunks_exact(2).map(|p| {
        let pair = [p[0], p[1]];
        if little {
            u16::from_le_bytes(pair)
        } else {
            u16::from_be_bytes(pair)
        }
    });
    Some(
        char::decode_utf16(units)
            .enumerate()
            .map(|(i, c)| {
                c.map_err(|_| {
                    ParseError::Invalid(format!(
                        "not valid UTF-16 (an unpaired surrogate at offset {}); save the file as UTF-8",
                        2 + 2 * i
                    ))
                })
            })
            .collect(),
    )
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

/// [`parse`] without the panic containment, for fuzzing: a panic in Twin's own parsers is a
/// bug to find, not only to contain.
#[doc(hidden)]
pub fn parse_uncontained(format: Format, bytes: &[u8]) -> Result<ParsedDoc, ParseError> {
    parse_unguarded(format, bytes)
}

fn parse_unguarded(format: Format, bytes: &[u8]) -> Result<ParsedDoc, ParseError> {
    match format {
        Format::Markdown => Ok(markdown::parse(&decode_text(bytes, format)?)),
        Format::Text => Ok(text::parse(&decode_text(bytes, format)?)),
        Format::Html => html::parse(&decode_text(bytes, format)?),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn utf16(text: &str, little: bool) -> Vec<u8> {
        let mut out = if little {
            vec![0xFF, 0xFE]
        } else {
            vec![0xFE, 0xFF]
        };
        for u in text.encode_utf16() {
            out.extend(if little {
                u.to_le_bytes()
            } else {
                u.to_be_bytes()
            });
        }
        out
    }

    #[test]
    fn utf16_with_a_byte_order_mark_is_read_and_broken_text_is_named() {
        for little in [true, false] {
            let doc = parse(
                Format::Markdown,
                &utf16("# Café\n\nNotes 🪵 on oak.", little),
            )
            .unwrap();
            assert_eq!(doc.blocks[0].text, "Café");
            assert!(doc.blocks[1].text.contains("🪵 on oak"));
        }
        let mut odd = utf16("abc", true);
        odd.push(0);
        let err = parse(Format::Text, &odd).unwrap_err().to_string();
        assert!(err.contains("odd number of bytes"), "{err}");
        let lone = [0xFF, 0xFE, 0x00, 0xD8, b'a', 0];
        let err = parse(Format::Text, &lone).unwrap_err().to_string();
        assert!(err.contains("unpaired surrogate at offset 2"), "{err}");
        // Without a mark, UTF-16 is binary to a UTF-8 reader, and says so.
        let err = parse(Format::Text, &utf16("abc", true)[2..])
            .unwrap_err()
            .to_string();
        assert!(err.contains("NUL bytes"), "{err}");
        let err = parse(Format::Markdown, b"ok \xE2\x82 broken")
            .unwrap_err()
            .to_string();
        assert!(err.contains("offset 3"), "{err}");
    }
}
