//! Citations and originality: which context chunks each paragraph of a draft draws on, and
//! warnings when a paragraph nearly repeats something the user already published.

use super::retrieve::{cosine, ContextChunk};
use crate::library::LibraryError;
use crate::store::{SearchFilter, Store};
use serde::Serialize;
use std::collections::HashSet;

/// A paragraph links to a second context chunk from this cosine similarity on.
pub const CITE_FROM: f32 = 0.35;
/// A paragraph this similar to a stored chunk is flagged as a near-repeat.
pub const REPEAT_FROM: f32 = 0.92;
/// This many consecutive words shared with the user's writing are flagged as copied.
pub const SHARED_RUN_WORDS: usize = 12;

/// A paragraph of the draft and the context it draws on.
#[derive(Clone, Debug, Serialize, ts_rs::TS)]
#[ts(export)]
pub struct Paragraph {
    /// The paragraph text.
    pub text: String,
    /// 1-based citation numbers of its nearest sources, best first, with cosine similarity.
    pub sources: Vec<(usize, f32)>,
}

/// Nearest context chunks per paragraph: always the nearest one (with its similarity, so a
/// weak link can be shown as weak), and the second when it reaches [`CITE_FROM`].
pub fn attribute(paragraphs: &[(String, Vec<f32>)], context: &[ContextChunk]) -> Vec<Paragraph> {
    paragraphs
        .iter()
        .map(|(text, v)| {
            let mut scored: Vec<(usize, f32)> = context
                .iter()
                .enumerate()
                .map(|(i, c)| (i + 1, cosine(v, &c.vector)))
                .collect();
            scored.sort_by(|a, b| b.1.total_cmp(&a.1));
            scored.truncate(2);
            if scored.len() == 2 && scored[1].1 < CITE_FROM {
                scored.pop();
            }
            Paragraph {
                text: text.clone(),
                sources: scored,
            }
        })
        .collect()
}

fn normalized_words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric() && c != '\'')
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// Warnings for paragraphs that nearly repeat the user's published writing: a run of
/// [`SHARED_RUN_WORDS`] words copied from a context chunk, or a chunk anywhere in the library
/// with cosine ≥ [`REPEAT_FROM`].
pub fn near_repeats(
    store: &Store,
    paragraphs: &[(String, Vec<f32>)],
    context: &[ContextChunk],
) -> Result<Vec<String>, LibraryError> {
    let mut runs: HashSet<Vec<String>> = HashSet::new();
    let mut run_source: Vec<(Vec<String>, String)> = Vec::new();
    for c in context {
        for w in normalized_words(&c.hit.text).windows(SHARED_RUN_WORDS) {
            if runs.insert(w.to_vec()) {
                run_source.push((w.to_vec(), c.hit.title.clone()));
            }
        }
    }
    let mut warnings = Vec::new();
    for (i, (text, v)) in paragraphs.iter().enumerate() {
        let words = normalized_words(text);
        if let Some(copied) = words.windows(SHARED_RUN_WORDS).find(|w| runs.contains(*w)) {
            let title = run_source
                .iter()
                .find(|(r, _)| r.as_slice() == copied)
                .map(|(_, t)| t.as_str())
                .unwrap_or("your writing");
            warnings.push(format!(
                "paragraph {} copies {SHARED_RUN_WORDS}+ words from \"{title}\": \"{}…\"",
                i + 1,
                copied.join(" ")
            ));
            continue;
        }
        if v.is_empty() {
            continue;
        }
        if let Some((id, distance)) = store.search_vector(v, &SearchFilter::default(), 1)?.first() {
            let similarity = 1.0 - *distance as f32;
            if similarity >= REPEAT_FROM {
                let title = store
                    .chunk_hits(&[*id])?
                    .first()
                    .map(|h| h.title.clone())
                    .unwrap_or_default();
                warnings.push(format!(
                    "paragraph {} nearly repeats \"{title}\" (similarity {similarity:.2})",
                    i + 1
                ));
            }
        }
    }
    Ok(warnings)
}
