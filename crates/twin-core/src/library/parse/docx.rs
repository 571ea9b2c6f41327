//! Word .docx: a ZIP holding `word/document.xml`. Paragraph styles `Heading1`…`Heading9` and
//! `Title` become headings; the title and creation date come from `docProps/core.xml`.

use super::{normalize_date, Block, BlockKind, ParseError, ParsedDoc};
use quick_xml::events::Event;
use quick_xml::Reader;
use std::io::{Cursor, Read};

/// The most XML one DOCX part may inflate to. A 300-page book's `document.xml` is ~10 MiB.
const MAX_XML_BYTES: u64 = 128 * 1024 * 1024;

fn read_entry(
    archive: &mut zip::ZipArchive<Cursor<&[u8]>>,
    name: &str,
) -> Result<Option<String>, ParseError> {
    let mut file = match archive.by_name(name) {
        Ok(f) => f,
        Err(zip::result::ZipError::FileNotFound) => return Ok(None),
        Err(e) => return Err(ParseError::Invalid(format!("damaged DOCX: {name}: {e}"))),
    };
    // The size an entry declares is not a limit: a deflate bomb inflates far past it. Read
    // through a cap instead.
    let mut bytes = Vec::new();
    (&mut file)
        .take(MAX_XML_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| ParseError::Invalid(format!("damaged DOCX: cannot read {name}: {e}")))?;
    if bytes.len() as u64 > MAX_XML_BYTES {
        return Err(ParseError::Invalid(format!(
            "{name} inflates past {} MiB (a decompression bomb, or not a real document)",
            MAX_XML_BYTES / 1048576
        )));
    }
    String::from_utf8(bytes)
        .map(Some)
        .map_err(|e| ParseError::Invalid(format!("damaged DOCX: {name} is not UTF-8: {e}")))
}

fn local_name(name: &[u8]) -> &[u8] {
    name.rsplit(|&b| b == b':').next().unwrap_or(name)
}

fn heading_level(style: &str) -> Option<u8> {
    let lower = style.to_ascii_lowercase();
    if lower == "title" {
        return Some(1);
    }
    lower
        .strip_prefix("heading")
        .and_then(|n| n.trim().parse::<u8>().ok())
        .map(|n| n.clamp(1, 6))
}

/// Parse a .docx file.
pub fn parse(bytes: &[u8]) -> Result<ParsedDoc, ParseError> {
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| {
        ParseError::Invalid(format!("not a valid DOCX (damaged or truncated ZIP: {e})"))
    })?;
    let xml = read_entry(&mut archive, "word/document.xml")?
        .ok_or_else(|| ParseError::Invalid("not a Word document (no word/document.xml)".into()))?;
    let mut doc = ParsedDoc::default();
    let mut reader = Reader::from_str(&xml);
    let (mut in_text, mut buf, mut style) = (false, String::new(), None::<String>);
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) | Ok(Event::Empty(e)) => match local_name(e.name().as_ref()) {
                b"t" => in_text = true,
                b"tab" => buf.push('\t'),
                b"br" | b"cr" => buf.push('\n'),
                b"pStyle" => {
                    style = e
                        .attributes()
                        .flatten()
                        .find(|a| local_name(a.key.as_ref()) == b"val")
                        .map(|a| String::from_utf8_lossy(&a.value).into_owned());
                }
                _ => {}
            },
            Ok(Event::Text(t)) if in_text => {
                let raw = String::from_utf8_lossy(t.as_ref()).into_owned();
                buf.push_str(
                    &quick_xml::escape::unescape(&raw)
                        .map(|c| c.into_owned())
                        .unwrap_or(raw),
                );
            }
            Ok(Event::GeneralRef(r)) if in_text => {
                let name = String::from_utf8_lossy(r.as_ref()).into_owned();
                let entity = format!("&{name};");
                buf.push_str(
                    &quick_xml::escape::unescape(&entity)
                        .map(|c| c.into_owned())
                        .unwrap_or_default(),
                );
            }
            Ok(Event::End(e)) => match local_name(e.name().as_ref()) {
                b"t" => in_text = false,
                b"p" => {
                    let kind = style
                        .as_deref()
                        .and_then(heading_level)
                        .map_or(BlockKind::Paragraph, BlockKind::Heading);
                    if !buf.trim().is_empty() {
                        doc.blocks.push(Block::new(kind, std::mem::take(&mut buf)));
                    }
                    buf.clear();
                    style = None;
                }
                _ => {}
            },
            Ok(Event::Eof) => break,
            Err(e) => {
                return Err(ParseError::Invalid(format!(
                    "damaged DOCX: word/document.xml is not well-formed at byte {}: {e}",
                    reader.buffer_position()
                )))
            }
            _ => {}
        }
    }
    if let Some(core) = read_entry(&mut archive, "docProps/core.xml")? {
        let field = |tag: &str| -> Option<String> {
            let start = core.find(&format!("<{tag}"))?;
            let open_end = start + core[start..].find('>')? + 1;
            let close = open_end + core[open_end..].find(&format!("</{tag}>"))?;
            Some(core[open_end..close].trim().to_string()).filter(|s| !s.is_empty())
        };
        doc.title = field("dc:title");
        doc.date = field("dcterms:created").as_deref().and_then(normalize_date);
    }
    if doc.title.is_none() {
        doc.title = doc
            .blocks
            .iter()
            .find(|b| matches!(b.kind, BlockKind::Heading(_)))
            .map(|b| b.text.clone());
    }
    Ok(doc)
}
