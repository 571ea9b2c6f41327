//! A post's plan taken from the author's own writing: the sentences of the retrieved passages
//! that say most about the topic, as the points the post makes.
//!
//! A small model's own plan restates the topic in vague bullets ("Do not undersell the plans
//! because nobody wants to spend the month building it"), and its post then circles the topic
//! without making a point. The author has usually made the point already, in a sentence of the
//! passages retrieved for the topic ("Price the whole shop, not just the cut."): a twin writes
//! about what its author knows, so the plan is those sentences, and the post says them again in
//! new words (the prompt counts as written text for the repeat penalties, so it cannot paste
//! them).

use super::retrieve::{cosine, mmr};
use super::style::without_list_marker;
use unicode_segmentation::UnicodeSegmentation;

/// A point is a sentence of at least this many words: shorter ones ("Nobody left.") lean on
/// the sentence before them.
const MIN_WORDS: usize = 4;
/// Nor longer than this: a long sentence is several points or a list.
const MAX_WORDS: usize = 28;
/// How much relevance to the topic counts against similarity to a point already taken
/// (maximal marginal relevance): the same claim made in a post and in the thread that repeats
/// it is one point. Two thirds: a point's relevance minus half its redundancy.
const RELEVANCE_WEIGHT: f32 = 2.0 / 3.0;

/// Candidate point sentences of the retrieved `passages`, in passage order: whole sentences of
/// a usable length, without headings, links, list numbers or thread numbering.
pub(super) fn candidates<'a>(passages: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for passage in passages {
        for line in passage.lines() {
            let line = line.trim();
            if line.starts_with('#') || line.starts_with("```") || line.contains("://") {
                continue;
            }
            for sentence in line.unicode_sentences() {
                let sentence = without_list_marker(sentence.trim().trim_start_matches('…'));
                let words = sentence.unicode_words().count();
                let whole = sentence.ends_with(['.', '!', '?'])
                    && sentence.chars().next().is_some_and(char::is_uppercase);
                if whole
                    && (MIN_WORDS..=MAX_WORDS).contains(&words)
                    && !out.iter().any(|s| s == sentence)
                {
                    out.push(sentence.to_string());
                }
            }
        }
    }
    out
}

/// Pick `n` of `sentences` (with their embeddings) for a post on the topic whose embedding is
/// `topic`: the most similar to the topic, each next one discounted by its similarity to those
/// already picked. Returned in the order picked, the most telling first.
pub(super) fn pick(
    topic: &[f32],
    sentences: &[String],
    vectors: &[Vec<f32>],
    n: usize,
) -> Vec<String> {
    let relevance: Vec<f32> = vectors.iter().map(|v| cosine(v, topic)).collect();
    let vectors: Vec<&[f32]> = vectors.iter().map(Vec::as_slice).collect();
    mmr(&relevance, &vectors, RELEVANCE_WEIGHT, n, |_| true)
        .into_iter()
        .filter_map(|i| sentences.get(i).cloned())
        .collect()
}

/// The plan as the draft template shows it: one point a line.
pub(super) fn as_plan(points: &[String]) -> String {
    points
        .iter()
        .map(|p| format!("- {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_are_whole_sentences_of_a_usable_length() {
        let passages = [
            "## Pricing\nFor the first year we charged too little. Nobody left.\n2/ I priced the wood and my hours.\n…and forgot the glue",
            "See https://example.com for more. Price the whole shop, not just the cut.",
        ];
        assert_eq!(
            candidates(passages),
            vec![
                "For the first year we charged too little.",
                "I priced the wood and my hours.",
            ]
        );
    }

    #[test]
    fn picks_the_relevant_and_skips_the_redundant() {
        let sentences: Vec<String> = ["a", "a again", "b", "off"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let unit = |x: f32, y: f32, z: f32| {
            let n = (x * x + y * y + z * z).sqrt();
            vec![x / n, y / n, z / n]
        };
        let vectors = vec![
            unit(1.0, 0.1, 0.0),
            unit(1.0, 0.08, 0.0),
            unit(0.6, 0.8, 0.0),
            unit(0.0, 0.0, 1.0),
        ];
        let topic = unit(1.0, 0.5, 0.0);
        assert_eq!(pick(&topic, &sentences, &vectors, 2), vec!["a", "b"]);
        assert_eq!(as_plan(&["x.".into(), "y.".into()]), "- x.\n- y.");
    }
}
