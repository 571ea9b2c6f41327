//! Structure-aware chunking measured in the embedding model's tokens.
//!
//! A chunk never crosses a heading (each keeps its heading path), prefers to end at a paragraph,
//! falls back to sentence ends, and only splits a sentence between words when the sentence alone
//! is over budget, so a chunk never splits a word. When a paragraph has to be split, the next
//! chunk repeats the last sentences of the previous one (the overlap) so no thought is cut off
//! from its context. Every chunk is a contiguous span of the document body, and its character
//! offsets point into that body, so a citation can open and highlight exactly what was used.

use super::parse::{Block, BlockKind};
use crate::store::NewChunk;
use unicode_segmentation::UnicodeSegmentation;

/// Counts tokens the way the embedding model will.
pub trait TokenCounter {
    /// Tokens `text` takes, without special tokens.
    fn count_tokens(&self, text: &str) -> usize;
}

impl TokenCounter for crate::engine::Embedder {
    fn count_tokens(&self, text: &str) -> usize {
        crate::engine::Embedder::count_tokens(self, text)
    }
}

/// Chunk sizes, in tokens of the embedding model.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ChunkConfig {
    /// Largest embedding input (title and headings line plus text, with `[CLS]`/`[SEP]`).
    pub max_tokens: usize,
    /// Tokens repeated from the previous chunk when a paragraph is split.
    pub overlap_tokens: usize,
}

impl Default for ChunkConfig {
    fn default() -> Self {
        Self {
            max_tokens: 256,
            overlap_tokens: 32,
        }
    }
}

/// A document body rendered from cleaned blocks, with each block's byte span in it.
#[derive(Clone, Debug)]
pub struct Body {
    /// The text: blocks separated by blank lines, headings written as Markdown headings.
    pub text: String,
    /// For each block: kind, heading path at that point, and byte range of its text in `text`.
    pub spans: Vec<(BlockKind, Vec<String>, std::ops::Range<usize>)>,
}

/// Render cleaned blocks into a body.
pub fn render_body(blocks: &[Block]) -> Body {
    let mut text = String::new();
    let mut spans = Vec::with_capacity(blocks.len());
    let mut headings: Vec<(u8, String)> = Vec::new();
    for b in blocks {
        if !text.is_empty() {
            text.push_str("\n\n");
        }
        if let BlockKind::Heading(level) = b.kind {
            headings.retain(|(l, _)| *l < level);
            headings.push((level, b.text.clone()));
            text.push_str(&"#".repeat(level as usize));
            text.push(' ');
        } else if b.kind == BlockKind::ListItem {
            text.push_str("- ");
        } else if b.kind == BlockKind::Quote {
            text.push_str("> ");
        }
        let start = text.len();
        text.push_str(&b.text);
        let path = headings.iter().map(|(_, h)| h.clone()).collect();
        spans.push((b.kind, path, start..text.len()));
    }
    Body { text, spans }
}

/// The text fed to the embedding model for a chunk: its title and headings give the vector context
/// that the chunk alone may lack ("It is moved here" means little without "Ownership > Moves").
pub fn embedding_input(title: &str, heading_path: &str, text: &str) -> String {
    let mut context = title.trim().to_string();
    let headings = heading_path.trim();
    if !headings.is_empty() {
        let headings = headings
            .strip_prefix(context.as_str())
            .map(|h| h.trim_start_matches(" > "))
            .unwrap_or(headings);
        if !headings.is_empty() {
            if !context.is_empty() {
                context.push_str(" > ");
            }
            context.push_str(headings);
        }
    }
    if context.is_empty() {
        text.to_string()
    } else {
        format!("{context}\n{text}")
    }
}

/// A unit the packer places whole: a byte range of the body and its token count.
#[derive(Clone, Debug)]
struct Piece {
    range: std::ops::Range<usize>,
    tokens: usize,
    /// True when this piece starts a new block (a paragraph boundary lies before it).
    starts_block: bool,
}

/// Split a block's range into pieces of at most `budget` tokens: the whole block if it fits,
/// else sentences (lines for code), else runs of words.
fn pieces(
    body: &str,
    kind: BlockKind,
    range: std::ops::Range<usize>,
    budget: usize,
    counter: &dyn TokenCounter,
) -> Vec<Piece> {
    let text = &body[range.clone()];
    let tokens = counter.count_tokens(text);
    if tokens <= budget {
        return vec![Piece {
            range,
            tokens,
            starts_block: true,
        }];
    }
    let units: Vec<(usize, &str)> = if kind == BlockKind::Code {
        text.split_inclusive('\n')
            .scan(0, |at, l| {
                let s = *at;
                *at += l.len();
                Some((s, l))
            })
            .collect()
    } else {
        text.split_sentence_bound_indices().collect()
    };
    let mut out = Vec::new();
    for (offset, unit) in units {
        let start = range.start + offset;
        let tokens = counter.count_tokens(unit);
        if tokens <= budget {
            out.push(Piece {
                range: start..start + unit.len(),
                tokens,
                starts_block: false,
            });
            continue;
        }
        // A sentence over budget: cut between words.
        let mut run_start = start;
        let mut run_tokens = 0;
        let mut run_end = start;
        for (w_off, word) in unit.split_word_bound_indices() {
            let w_tokens = if word.trim().is_empty() {
                0
            } else {
                counter.count_tokens(word)
            };
            if run_tokens + w_tokens > budget && run_end > run_start {
                out.push(Piece {
                    range: run_start..run_end,
                    tokens: run_tokens,
                    starts_block: false,
                });
                run_start = start + w_off;
                run_tokens = 0;
            }
            run_tokens += w_tokens;
            run_end = start + w_off + word.len();
        }
        if run_end > run_start {
            out.push(Piece {
                range: run_start..run_end,
                tokens: run_tokens,
                starts_block: false,
            });
        }
    }
    if let Some(first) = out.first_mut() {
        first.starts_block = true;
    }
    out
}

fn trimmed(body: &str, range: std::ops::Range<usize>) -> std::ops::Range<usize> {
    let s = &body[range.clone()];
    let start = range.start + (s.len() - s.trim_start().len());
    let end = range.end - (s.len() - s.trim_end().len());
    start..end.max(start)
}

/// Chunk a rendered body. `title` is part of each chunk's embedding input, so it counts against
/// the budget.
pub fn chunk(
    body: &Body,
    title: &str,
    config: &ChunkConfig,
    counter: &dyn TokenCounter,
) -> Vec<NewChunk> {
    let mut chunks = Vec::new();
    let mut section: Vec<Piece> = Vec::new();
    let mut section_path: Vec<String> = Vec::new();
    let emit_section =
        |pieces: &mut Vec<Piece>,
         path: &[String],
         chunks: &mut Vec<(String, std::ops::Range<usize>, usize)>| {
            if pieces.is_empty() {
                return;
            }
            let heading = path.join(" > ");
            pack(
                pieces,
                config,
                counter.count_tokens(&embedding_input(title, &heading, "")) + 2,
                &mut |range, tokens| {
                    // A span of nothing but spaces is no chunk (nothing to search or embed).
                    let range = trimmed(&body.text, range);
                    if !range.is_empty() {
                        chunks.push((heading.clone(), range, tokens))
                    }
                },
            );
            pieces.clear();
        };
    let mut raw: Vec<(String, std::ops::Range<usize>, usize)> = Vec::new();
    for (kind, path, range) in &body.spans {
        if matches!(kind, BlockKind::Heading(_)) {
            emit_section(&mut section, &section_path, &mut raw);
            section_path = path.clone();
            continue;
        }
        let context = counter.count_tokens(&embedding_input(title, &path.join(" > "), "")) + 2;
        let budget = config.max_tokens.saturating_sub(context).max(16);
        // A list item's "- " and a quote's "> " are part of the text a chunk holds, so they
        // count against the budget (uncounted, a chunk of many items ran over it).
        let marked = match kind {
            BlockKind::ListItem | BlockKind::Quote => range.start.saturating_sub(2)..range.end,
            _ => range.clone(),
        };
        section.extend(pieces(&body.text, *kind, marked, budget, counter));
    }
    emit_section(&mut section, &section_path, &mut raw);

    // Byte offsets → character offsets, in one pass over the body.
    let mut char_at = 0usize;
    let mut byte_at = 0usize;
    let mut to_chars = |byte: usize| {
        char_at += body.text[byte_at..byte].chars().count();
        byte_at = byte;
        char_at
    };
    let mut bounds: Vec<(usize, usize)> = Vec::new();
    let mut points: Vec<usize> = raw.iter().flat_map(|(_, r, _)| [r.start, r.end]).collect();
    points.sort_unstable();
    points.dedup();
    let map: std::collections::HashMap<usize, usize> =
        points.iter().map(|&p| (p, to_chars(p))).collect();
    for (_, r, _) in &raw {
        bounds.push((map[&r.start], map[&r.end]));
    }
    for ((heading_path, range, tokens), (cs, ce)) in raw.into_iter().zip(bounds) {
        let text = body.text[range].to_string();
        chunks.push(NewChunk {
            heading_path,
            text,
            char_start: cs,
            char_end: ce,
            n_tokens: tokens,
        });
    }
    chunks
}

/// Pack a section's pieces greedily into chunks of at most `max_tokens - context` tokens.
fn pack(
    pieces: &[Piece],
    config: &ChunkConfig,
    context: usize,
    emit: &mut dyn FnMut(std::ops::Range<usize>, usize),
) {
    let budget = config.max_tokens.saturating_sub(context).max(16);
    let text_range = |ps: &[Piece]| ps[0].range.start..ps[ps.len() - 1].range.end;
    let mut start = 0usize;
    while start < pieces.len() {
        let mut end = start;
        let mut tokens = 0;
        while end < pieces.len() && (end == start || tokens + pieces[end].tokens <= budget) {
            tokens += pieces[end].tokens;
            end += 1;
        }
        // Prefer to end at a paragraph boundary in the second half of the chunk.
        if end < pieces.len() && !pieces[end].starts_block {
            let mut acc = 0;
            let mut best = None;
            for (i, piece) in pieces.iter().enumerate().take(end).skip(start) {
                if i > start && piece.starts_block && acc >= budget / 2 {
                    best = Some((i, acc));
                }
                acc += piece.tokens;
            }
            if let Some((i, acc)) = best {
                end = i;
                tokens = acc;
            }
        }
        emit(text_range(&pieces[start..end]), tokens + context);
        if end >= pieces.len() {
            break;
        }
        // Overlap only when the cut falls inside a paragraph.
        let mut next = end;
        if !pieces[end].starts_block {
            let mut overlap = 0;
            while next > start + 1
                && !pieces[next - 1].starts_block
                && overlap + pieces[next - 1].tokens <= config.overlap_tokens
            {
                overlap += pieces[next - 1].tokens;
                next -= 1;
            }
        }
        start = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A document: headings and paragraphs of sentences of words (some long, some odd).
    fn document() -> impl Strategy<Value = Vec<(BlockKind, String)>> {
        let word = prop_oneof![
            "[a-z]{1,8}",
            "[A-Z][a-z]{0,6}[.,;!?]?",
            "[éüßçø]{1,3}",
            "[a-z]{20,40}",
            Just("🦀".to_string()),
        ];
        let sentence = prop::collection::vec(word, 1..30).prop_map(|w| w.join(" ") + ".");
        let paragraph = prop::collection::vec(sentence, 1..6).prop_map(|s| s.join(" "));
        let block = prop_oneof![
            3 => paragraph.prop_map(|p| (BlockKind::Paragraph, p)),
            1 => (1u8..4, "[A-Z][a-z]{2,10}").prop_map(|(l, h)| (BlockKind::Heading(l), h)),
            1 => "[a-z]{2,10}( [a-z]{2,10}){0,5}".prop_map(|t| (BlockKind::ListItem, t)),
        ];
        prop::collection::vec(block, 1..12)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        /// Every chunk is exactly `body[char_start..char_end]`, chunks come in order, and each
        /// fits the budget unless a single sentence's word alone cannot.
        #[test]
        fn chunks_are_spans_of_the_body_within_budget(
            blocks in document(),
            max_tokens in 12usize..80,
            overlap in 0usize..8,
        ) {
            let blocks: Vec<Block> = blocks.into_iter().map(|(k, t)| Block::new(k, t)).collect();
            let body = render_body(&blocks);
            let config = ChunkConfig { max_tokens, overlap_tokens: overlap };
            let chunks = chunk(&body, "Title", &config, &Words);
            let chars: Vec<char> = body.text.chars().collect();
            let mut last = 0;
            for c in &chunks {
                prop_assert!(c.char_start < c.char_end && c.char_end <= chars.len());
                let span: String = chars[c.char_start..c.char_end].iter().collect();
                prop_assert_eq!(&c.text, &span);
                prop_assert!(c.char_start >= last);
                last = c.char_start;
                // The budget: max_tokens less title, headings and [CLS]/[SEP], never under 16
                // tokens of text however long the headings.
                let input = embedding_input("Title", &c.heading_path, &c.text);
                let context = Words.count_tokens(&embedding_input("Title", &c.heading_path, "")) + 2;
                let used = Words.count_tokens(&input) + 2;
                prop_assert!(
                    used <= max_tokens.max(context + 16),
                    "chunk over budget: {} > {}: {:?}", used, max_tokens, input
                );
            }
            // A body with any text under its headings is chunked; headings alone are not.
            let has_text = blocks.iter().any(|b| !matches!(b.kind, BlockKind::Heading(_)));
            prop_assert_eq!(chunks.is_empty(), !has_text);
        }
    }

    /// Counts whitespace-separated words: enough to test packing rules without a model.
    struct Words;
    impl TokenCounter for Words {
        fn count_tokens(&self, text: &str) -> usize {
            text.split_whitespace().count()
        }
    }

    fn body_of(blocks: &[(BlockKind, &str)]) -> Body {
        render_body(
            &blocks
                .iter()
                .map(|(k, t)| Block::new(*k, *t))
                .collect::<Vec<_>>(),
        )
    }

    #[test]
    fn chunks_respect_headings_and_offsets() {
        let body = body_of(&[
            (BlockKind::Heading(1), "Guide"),
            (BlockKind::Paragraph, "One two three."),
            (BlockKind::Heading(2), "Part"),
            (BlockKind::Paragraph, "Four five six."),
        ]);
        let chunks = chunk(
            &body,
            "Guide",
            &ChunkConfig {
                max_tokens: 50,
                overlap_tokens: 4,
            },
            &Words,
        );
        assert_eq!(chunks.len(), 2);
        assert_eq!(chunks[0].heading_path, "Guide");
        assert_eq!(chunks[1].heading_path, "Guide > Part");
        for c in &chunks {
            let by_chars: String = body
                .text
                .chars()
                .skip(c.char_start)
                .take(c.char_end - c.char_start)
                .collect();
            assert_eq!(by_chars, c.text);
        }
    }

    #[test]
    fn long_paragraphs_split_at_sentences_with_overlap_and_never_inside_words() {
        let sentence = "Alpha beta gamma delta epsilon. ";
        let para = sentence.repeat(20);
        let body = body_of(&[(BlockKind::Paragraph, para.trim())]);
        let cfg = ChunkConfig {
            max_tokens: 30,
            overlap_tokens: 6,
        };
        let chunks = chunk(&body, "", &cfg, &Words);
        assert!(chunks.len() > 3);
        for c in &chunks {
            assert!(c.n_tokens <= 30, "{} tokens", c.n_tokens);
            assert!(
                c.text.starts_with("Alpha") && c.text.ends_with("epsilon."),
                "{:?}",
                c.text
            );
        }
        // Overlap: consecutive chunks share text.
        assert!(chunks[1].char_start < chunks[0].char_end);
    }

    #[test]
    fn a_giant_sentence_is_cut_between_words() {
        let words: Vec<String> = (0..100).map(|i| format!("word{i}")).collect();
        let body = body_of(&[(BlockKind::Paragraph, &words.join(" "))]);
        let chunks = chunk(
            &body,
            "",
            &ChunkConfig {
                max_tokens: 20,
                overlap_tokens: 0,
            },
            &Words,
        );
        let rebuilt: Vec<&str> = chunks
            .iter()
            .flat_map(|c| c.text.split_whitespace())
            .collect();
        assert_eq!(rebuilt.len(), 100);
        assert!(rebuilt.iter().all(|w| w.starts_with("word")));
    }
}
