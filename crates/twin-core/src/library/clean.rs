//! Cleaning: Unicode NFC, "mathematical bold/italic" letters back to plain ones, invisible
//! characters removed, whitespace tidied, and boilerplate blocks ("Share this post", cookie notes,
//! copyright lines) dropped.

use super::parse::{Block, BlockKind};
use unicode_normalization::UnicodeNormalization;

/// LinkedIn posts fake bold and italics with the Mathematical Alphanumeric Symbols block
/// (U+1D400–U+1D7FF). Their compatibility decomposition is the plain letter or digit, so NFKC
/// per character maps them back without touching anything else in the text.
fn plain_letter(c: char) -> Option<char> {
    if ('\u{1D400}'..='\u{1D7FF}').contains(&c) {
        let mut plain = std::iter::once(c).nfkc();
        let first = plain.next()?;
        plain.next().is_none().then_some(first)
    } else {
        None
    }
}

fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{200B}' | '\u{200C}' | '\u{200D}' | '\u{2060}' | '\u{FEFF}' | '\u{00AD}'
    )
}

/// NFC plus letter mapping and invisible-character removal; whitespace untouched.
pub fn normalize(text: &str) -> String {
    text.nfc()
        .filter(|&c| !is_invisible(c))
        .map(|c| plain_letter(c).unwrap_or(c))
        .collect()
}

/// Collapse runs of spaces and tabs, trim every line, and drop blank lines inside a block.
/// Single line breaks stay: in posts they carry the writer's rhythm.
pub fn tidy_whitespace(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let words: Vec<&str> = line
            .split([' ', '\t', '\u{a0}', '\r'])
            .filter(|w| !w.is_empty())
            .collect();
        if words.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(&words.join(" "));
    }
    out
}

fn tidy_code(text: &str) -> String {
    let lines: Vec<&str> = text.lines().map(str::trim_end).collect();
    let start = lines
        .iter()
        .position(|l| !l.is_empty())
        .unwrap_or(lines.len());
    let end = lines
        .iter()
        .rposition(|l| !l.is_empty())
        .map_or(start, |e| e + 1);
    lines[start..end].join("\n")
}

const BOILERPLATE: &[&str] = &[
    "share this post",
    "share this article",
    "subscribe to",
    "subscribe now",
    "sign up for",
    "all rights reserved",
    "copyright ©",
    "© copyright",
    "cookie",
    "click here to",
    "follow me for more",
    "like · comment · share",
    "like comment share",
    "leave a comment",
    "read more",
    "back to top",
    "skip to content",
    "previous post",
    "next post",
];

/// Whether a short block is site furniture rather than writing.
pub fn is_boilerplate(text: &str) -> bool {
    if text.chars().count() > 120 {
        return false;
    }
    let lower = text.to_lowercase();
    BOILERPLATE.iter().any(|b| lower.contains(b))
}

/// Clean every block; drop empty and boilerplate ones.
pub fn clean_blocks(blocks: Vec<Block>) -> Vec<Block> {
    blocks
        .into_iter()
        .filter_map(|b| {
            let text = normalize(&b.text);
            let text = if b.kind == BlockKind::Code {
                tidy_code(&text)
            } else {
                tidy_whitespace(&text)
            };
            let text = if matches!(b.kind, BlockKind::Heading(_)) {
                text.replace('\n', " ")
            } else {
                text
            };
            if text.is_empty() || (b.kind != BlockKind::Code && is_boilerplate(&text)) {
                None
            } else {
                Some(Block::new(b.kind, text))
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn math_letters_become_plain_and_text_is_nfc() {
        // "𝗕𝗼𝗹𝗱 𝘪𝘵𝘢𝘭𝘪𝘤 𝟭𝟮𝟯" as pasted from a LinkedIn post, and a decomposed "é".
        let s = normalize("\u{1D5D5}\u{1D5FC}\u{1D5F9}\u{1D5F1} \u{1D62A}\u{1D635}\u{1D622}\u{1D62D}\u{1D62A}\u{1D624} \u{1D7ED}\u{1D7EE}\u{1D7EF} cafe\u{301}\u{200B}");
        assert_eq!(s, "Bold italic 123 café");
    }

    #[test]
    fn whitespace_and_boilerplate() {
        assert_eq!(tidy_whitespace("  a   b\t c \n\n  d  "), "a b c\nd");
        let blocks = clean_blocks(vec![
            Block::new(BlockKind::Paragraph, "Real   writing here."),
            Block::new(BlockKind::Paragraph, "Share this post on social media"),
            Block::new(BlockKind::Paragraph, "   "),
        ]);
        assert_eq!(
            blocks,
            vec![Block::new(BlockKind::Paragraph, "Real writing here.")]
        );
    }
}
