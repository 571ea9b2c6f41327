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
    match std::panic::catch_unwind(|| extract_text(bytes)) {
        Ok(result) => result,
        Err(_) => Err("damaged or truncated PDF (the parser gave up)".into()),
    }
}

/// What `pdf_extract::extract_text_from_mem` does, with the page tree checked in between.
fn extract_text(bytes: &[u8]) -> Result<String, String> {
    let damaged = |e: &dyn std::fmt::Display| format!("damaged or truncated PDF: {e}");
    let mut doc = lopdf::Document::load_mem(bytes).map_err(|e| damaged(&e))?;
    if doc.is_encrypted() {
        // Files "protected" only against editing open with the empty password.
        doc.decrypt("").map_err(|_| {
            "the PDF is encrypted with a password; open it and save a copy without one"
        })?;
    }
    check_page_tree(&doc)?;
    let mut text = String::new();
    pdf_extract::output_doc(&doc, &mut pdf_extract::PlainTextOutput::new(&mut text))
        .map_err(|e| damaged(&e))?;
    Ok(text)
}

/// The deepest page tree accepted; real files are a few levels deep.
const MAX_PAGE_TREE_DEPTH: usize = 256;

/// pdf-extract finds a page's inherited attributes (`/Resources`, `/MediaBox`) by following
/// `/Parent` recursively, remembering nothing: a page that is its own ancestor is followed
/// forever, a hang or a stack overflow (found by fuzzing). Refuse such a tree before extraction starts.
fn check_page_tree(doc: &lopdf::Document) -> Result<(), String> {
    for (_, page) in doc.get_pages() {
        let mut seen = std::collections::HashSet::new();
        let mut node = page;
        while let Ok(dict) = doc.get_dictionary(node) {
            if !seen.insert(node) || seen.len() > MAX_PAGE_TREE_DEPTH {
                return Err(format!(
                    "damaged PDF: the page tree loops back on itself (object {} {})",
                    node.0, node.1
                ));
            }
            match dict.get(b"Parent").and_then(lopdf::Object::as_reference) {
                Ok(parent) => node = parent,
                Err(_) => break,
            }
        }
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn one_page(page: &str) -> Vec<u8> {
        let content = "BT /F1 12 Tf 72 720 Td (Sharpen the scraper first.) Tj ET";
        crate::fuzzing::pdf_file(
            &[
                "<< /Type /Catalog /Pages 2 0 R >>",
                "<< /Type /Pages /Kids [3 0 R] /Count 1 /MediaBox [0 0 612 792] >>",
                page,
                format!(
                    "<< /Length {} >>\nstream\n{content}\nendstream",
                    content.len()
                )
                .as_str(),
                "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
            ],
            false,
            "",
        )
    }

    #[test]
    fn reads_the_text_layer_with_inherited_attributes() {
        let bytes = one_page(
            "<< /Type /Page /Parent 2 0 R /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>",
        );
        let text = extract_in_process(&bytes).unwrap();
        assert!(text.contains("Sharpen the scraper first."), "{text:?}");
    }

    #[test]
    fn a_page_that_is_its_own_parent_is_refused_not_followed_forever() {
        // Without the check, pdf-extract follows the page to itself looking for an inherited
        // media box, forever: this test hangs (or the stack overflows).
        let bytes = one_page("<< /Type /Page /Parent 3 0 R /Contents 4 0 R >>");
        let error = extract_in_process(&bytes).unwrap_err();
        assert!(error.contains("page tree loops back"), "{error}");
    }
}
