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

/// The longest run without a space kept in prose. Nothing a person writes is longer (a long
/// tracking URL is a few hundred characters); what is longer is a data URI, base64 or minified
/// code, and one such "word" would become a chunk of megabytes that no search or model can use.
pub const MAX_WORD_CHARS: usize = 1000;

fn is_runaway(word: &str) -> bool {
    word.len() > MAX_WORD_CHARS && word.chars().count() > MAX_WORD_CHARS
}

/// Collapse runs of spaces and tabs, trim every line, and drop blank lines inside a block.
/// Single line breaks stay: in posts they carry the writer's rhythm. Runs longer than
/// [`MAX_WORD_CHARS`] are dropped.
pub fn tidy_whitespace(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        // Every Unicode space (en quad, thin space, ideographic space…), not only ASCII ones:
        // a line of U+2000s is blank, not a word (fuzzing found such lines becoming empty
        // chunks).
        let words: Vec<&str> = line
            .split(char::is_whitespace)
            .filter(|w| !w.is_empty() && !is_runaway(w))
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

/// Trailing spaces and blank edges go; a line holding a run longer than [`MAX_WORD_CHARS`]
/// (minified code, an inlined blob) goes too.
fn tidy_code(text: &str) -> String {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.split_whitespace().any(is_runaway))
        .collect();
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
    fn runaway_runs_are_not_words() {
        let blob = "A".repeat(MAX_WORD_CHARS + 1);
        let url = format!("https://example.com/{}", "a".repeat(300));
        assert_eq!(
            tidy_whitespace(&format!("see {blob} and {url}")),
            format!("see and {url}")
        );
        assert_eq!(
            tidy_code(&format!("let a = 1;\n{blob}\nlet b = 2;")),
            "let a = 1;\nlet b = 2;"
        );
    }

    #[test]
    fn whitespace_and_boilerplate() {
        assert_eq!(tidy_whitespace("  a   b\t c \n\n  d  "), "a b c\nd");
        assert_eq!(tidy_whitespace("\u{2000}\u{2009}\u{3000}"), "");
        assert_eq!(tidy_whitespace("a\u{2009}b\u{a0}c"), "a b c");
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
