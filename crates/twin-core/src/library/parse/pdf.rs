//! PDF: the text layer, through `pdf-extract`. Hard-wrapped lines inside a paragraph are joined
//! and words hyphenated across lines are rejoined.

use super::{paragraphs, Block, BlockKind, ParseError, ParsedDoc};

/// Parse a PDF's text layer.
pub fn parse(bytes: &[u8]) -> Result<ParsedDoc, ParseError> {
    if !bytes.starts_with(b"%PDF") {
        return Err(ParseError::Invalid(
            "not a PDF (missing %PDF header)".into(),
        ));
    }
    // In a limited child process where the host allows it (see `worker`).
    let text = super::worker::extract(bytes)?;
    if text.trim().is_empty() {
        return Err(ParseError::Skip(
            "the PDF has no text layer (scanned images?)".into(),
        ));
    }
    let blocks = paragraphs(&text.replace('\u{c}', "\n\n"))
        .into_iter()
        .map(|b| Block::new(BlockKind::Paragraph, unwrap_lines(&b.text)))
        .collect();
    Ok(ParsedDoc {
        blocks,
        ..Default::default()
    })
}

/// Extract the text layer here, in this process. pdf-extract panics on some damaged files
/// instead of returning an error; that is contained, so one bad file never takes the import
/// down. Memory and loops are not: see `worker` for the limited child process.
pub(super) fn extract_in_process(bytes: &[u8]) -> Result<String, String> {
    match std::panic::catch_unwind(|| pdf_extract::extract_text_from_mem(bytes)) {
        Ok(Ok(text)) => Ok(text),
        Ok(Err(e)) => Err(format!("damaged or truncated PDF: {e}")),
        Err(_) => Err("damaged or truncated PDF (the parser gave up)".into()),
    }
}

fn unwrap_lines(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines().map(str::trim) {
        if out.ends_with('-') && line.starts_with(|c: char| c.is_lowercase()) {
            out.pop();
        } else if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(line);
    }
    out
}
