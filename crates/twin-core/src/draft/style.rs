//! The style card: a short, editable description of how the user writes, computed from their
//! corpus and put in every drafting system prompt.
//!
//! The numbers are plain corpus statistics (sentence length, punctuation and emoji habits,
//! vocabulary, recurring phrases, typical openings and closings) rendered as sentences a small
//! model can follow. The generated card is stored; a card the user edited is kept instead of it
//! until they reset it.

use crate::store::{Store, StoreError};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use unicode_segmentation::UnicodeSegmentation;

/// Statistics behind a style card.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, ts_rs::TS)]
#[ts(export)]
pub struct StyleStats {
    /// Documents measured.
    pub documents: usize,
    /// Words measured.
    pub words: usize,
    /// Mean words per sentence.
    pub mean_sentence_words: f64,
    /// Share of sentences under 8 words.
    pub short_sentence_share: f64,
    /// Questions per 100 sentences.
    pub questions_per_100_sentences: f64,
    /// Exclamation marks per 100 sentences.
    pub exclamations_per_100_sentences: f64,
    /// Em or en dashes and arrows per 1000 words.
    pub dashes_per_1000_words: f64,
    /// Emoji per 1000 words.
    pub emoji_per_1000_words: f64,
    /// The emoji used most.
    pub favourite_emoji: Vec<String>,
    /// Distinct words per 100 words in 1000-word windows (a length-independent richness measure).
    pub vocabulary_richness: f64,
    /// Share of sentences in the first person ("I", "my", "we").
    pub first_person_share: f64,
    /// Three-word phrases used in several documents.
    pub recurring_phrases: Vec<String>,
    /// How documents tend to begin (first words of the first sentence).
    pub typical_openings: Vec<String>,
    /// How documents tend to end (last sentences).
    pub typical_closings: Vec<String>,
}

const FUNCTION_WORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "from", "have", "i", "if", "in",
    "is", "it", "its", "of", "on", "or", "that", "the", "this", "to", "was", "we", "with", "you",
    "my", "not", "do", "so", "they", "what", "there", "than", "then", "when",
];

fn is_emoji(c: char) -> bool {
    matches!(c as u32, 0x1F300..=0x1FAFF | 0x2600..=0x27BF)
}

fn words_of(text: &str) -> Vec<String> {
    text.unicode_words().map(|w| w.to_lowercase()).collect()
}

/// Sentences of `text`, skipping headings, list markers and code.
fn sentences(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#') && !l.trim_start().starts_with("```"))
        .flat_map(|l| {
            without_list_marker(l)
                .unicode_sentences()
                .map(str::trim)
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .filter(|s| s.unicode_words().count() > 0)
        .collect()
}

/// `line` without a leading list or thread marker ("1.", "2/", "3)", "-", "*", "•"): "1." would
/// otherwise count as a sentence of its own.
pub(crate) fn without_list_marker(line: &str) -> &str {
    let trimmed = line.trim_start();
    let digits = trimmed.len()
        - trimmed
            .trim_start_matches(|c: char| c.is_ascii_digit())
            .len();
    let rest = &trimmed[digits..];
    let marker = if digits > 0 {
        rest.strip_prefix(['.', '/', ')'])
    } else {
        rest.strip_prefix(['-', '*', '•'])
    };
    match marker {
        Some(after) if after.starts_with(' ') => after.trim_start(),
        _ => line,
    }
}

/// Words in each sentence of `text`, counted as the style statistics count them.
pub fn sentence_lengths(text: &str) -> Vec<usize> {
    sentences(text)
        .iter()
        .map(|s| s.unicode_words().count())
        .collect()
}

/// Measure `bodies` (the user's documents).
pub fn measure(bodies: &[String]) -> StyleStats {
    let mut stats = StyleStats {
        documents: bodies.len(),
        ..Default::default()
    };
    let mut sentence_count = 0usize;
    let mut sentence_words = 0usize;
    let mut short = 0usize;
    let mut questions = 0usize;
    let mut exclamations = 0usize;
    let mut first_person = 0usize;
    let mut dashes = 0usize;
    let mut emoji: HashMap<char, usize> = HashMap::new();
    let mut phrase_docs: HashMap<String, usize> = HashMap::new();
    let mut openings: HashMap<String, usize> = HashMap::new();
    let mut closings: Vec<String> = Vec::new();
    let mut all_words: Vec<String> = Vec::new();
    for body in bodies {
        let sents = sentences(body);
        for s in &sents {
            let w = words_of(s);
            sentence_count += 1;
            sentence_words += w.len();
            short += usize::from(w.len() < 8);
            questions += usize::from(s.contains('?'));
            exclamations += s.matches('!').count();
            first_person += usize::from(
                w.iter()
                    .any(|x| x == "i" || x == "my" || x == "we" || x == "our"),
            );
        }
        for c in body.chars() {
            if is_emoji(c) {
                *emoji.entry(c).or_default() += 1;
            }
        }
        dashes +=
            body.matches('—').count() + body.matches(" – ").count() + body.matches('→').count();
        let words = words_of(body);
        let mut seen = std::collections::HashSet::new();
        for tri in words.windows(3) {
            if tri.iter().all(|w| FUNCTION_WORDS.contains(&w.as_str())) {
                continue;
            }
            let phrase = tri.join(" ");
            if seen.insert(phrase.clone()) {
                *phrase_docs.entry(phrase).or_default() += 1;
            }
        }
        if let Some(first) = sents.first() {
            let opening: Vec<String> = first
                .split_whitespace()
                .take(3)
                .map(str::to_string)
                .collect();
            *openings.entry(opening.join(" ")).or_default() += 1;
        }
        if let Some(last) = sents.last() {
            if last.chars().count() <= 80 {
                closings.push(last.clone());
            }
        }
        all_words.extend(words);
    }
    stats.words = all_words.len();
    let per = |n: usize, d: usize, scale: f64| {
        if d == 0 {
            0.0
        } else {
            n as f64 * scale / d as f64
        }
    };
    stats.mean_sentence_words = per(sentence_words, sentence_count, 1.0);
    stats.short_sentence_share = per(short, sentence_count, 1.0);
    stats.questions_per_100_sentences = per(questions, sentence_count, 100.0);
    stats.exclamations_per_100_sentences = per(exclamations, sentence_count, 100.0);
    stats.first_person_share = per(first_person, sentence_count, 1.0);
    stats.dashes_per_1000_words = per(dashes, stats.words, 1000.0);
    stats.emoji_per_1000_words = per(emoji.values().sum(), stats.words, 1000.0);
    let mut emoji: Vec<(char, usize)> = emoji.into_iter().collect();
    emoji.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    stats.favourite_emoji = emoji.iter().take(3).map(|(c, _)| c.to_string()).collect();
    let windows: Vec<f64> = all_words
        .chunks(1000)
        .filter(|w| w.len() >= 200)
        .map(|w| {
            let distinct: std::collections::HashSet<&String> = w.iter().collect();
            distinct.len() as f64 * 100.0 / w.len() as f64
        })
        .collect();
    stats.vocabulary_richness = if windows.is_empty() {
        0.0
    } else {
        windows.iter().sum::<f64>() / windows.len() as f64
    };
    let min_docs = (bodies.len() / 10).max(2);
    let mut phrases: Vec<(String, usize)> = phrase_docs
        .into_iter()
        .filter(|(_, n)| *n >= min_docs)
        .collect();
    phrases.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    stats.recurring_phrases = phrases.into_iter().take(6).map(|(p, _)| p).collect();
    let mut openings: Vec<(String, usize)> = openings.into_iter().collect();
    openings.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    stats.typical_openings = openings.into_iter().take(3).map(|(o, _)| o).collect();
    closings.sort_by_key(|c| c.chars().count());
    stats.typical_closings = closings.into_iter().take(3).collect();
    stats
}

/// The card text for `stats`: short lines a small model can act on.
pub fn render_card(stats: &StyleStats) -> String {
    let mut lines = Vec::new();
    let length = if stats.mean_sentence_words < 11.0 {
        "short, punchy sentences"
    } else if stats.mean_sentence_words < 18.0 {
        "medium-length sentences"
    } else {
        "long, flowing sentences"
    };
    lines.push(format!(
        "- Writes {length} (about {:.0} words on average; {:.0}% are under 8 words).",
        stats.mean_sentence_words,
        stats.short_sentence_share * 100.0
    ));
    if stats.first_person_share > 0.2 {
        lines.push("- Speaks in the first person, from their own experience.".into());
    }
    lines.push(format!(
        "- {} questions; {} exclamation marks.",
        if stats.questions_per_100_sentences >= 5.0 {
            "Asks the reader"
        } else {
            "Rarely asks"
        },
        if stats.exclamations_per_100_sentences >= 3.0 {
            "uses"
        } else {
            "almost never uses"
        }
    ));
    if stats.dashes_per_1000_words >= 1.0 {
        lines.push("- Likes dashes and arrows (—, →) to link ideas.".into());
    }
    if stats.emoji_per_1000_words >= 0.5 && !stats.favourite_emoji.is_empty() {
        lines.push(format!(
            "- Uses emoji sparingly, mostly {}.",
            stats.favourite_emoji.join(" ")
        ));
    } else {
        lines.push("- No emoji.".into());
    }
    let quoted = |label: &str, items: &[String], suffix: &str| {
        (!items.is_empty()).then(|| {
            let list: Vec<String> = items.iter().map(|p| format!("\"{p}{suffix}\"")).collect();
            format!("- {label}: {}.", list.join(", "))
        })
    };
    lines.extend(quoted("Recurring phrases", &stats.recurring_phrases, ""));
    lines.extend(quoted("Often opens with", &stats.typical_openings, "…"));
    lines.extend(quoted("Typical closing lines", &stats.typical_closings, ""));
    lines.join("\n")
}

/// Settings key of the card the user edited (absent: the generated card is used).
pub const STYLE_CARD_SETTING: &str = "style_card";
/// Settings key of the generated card and the library state it was computed from.
const GENERATED_SETTING: &str = "style_card.generated";

/// The style card in use.
#[derive(Clone, Debug, Serialize, ts_rs::TS)]
#[ts(export)]
pub struct StyleCard {
    /// The text used in prompts: the user's edit if there is one, else the generated card.
    pub text: String,
    /// Whether `text` is the user's edit.
    pub edited: bool,
    /// The card computed from the corpus.
    pub generated: String,
    /// The statistics behind the generated card.
    pub stats: StyleStats,
}

/// The current card, recomputing the generated one when the library changed.
pub fn card(store: &Store) -> Result<StyleCard, StoreError> {
    let key = format!("generation {}", store.library_generation()?);
    let cached: Option<(String, StyleStats)> = store
        .setting(GENERATED_SETTING)?
        .and_then(|v| serde_json::from_str::<serde_json::Value>(&v).ok())
        .filter(|v| v["key"] == key.as_str())
        .and_then(|v| {
            serde_json::from_value(v["stats"].clone())
                .ok()
                .map(|st| (key.clone(), st))
        });
    let stats = match cached {
        Some((_, stats)) => stats,
        None => {
            let bodies: Vec<String> = store
                .document_bodies(2000)?
                .into_iter()
                .map(|(_, _, b)| b)
                .collect();
            let stats = measure(&bodies);
            store.set_setting(
                GENERATED_SETTING,
                &serde_json::json!({ "key": key, "stats": stats }).to_string(),
            )?;
            stats
        }
    };
    let generated = render_card(&stats);
    let edited = store.setting(STYLE_CARD_SETTING)?;
    Ok(StyleCard {
        text: edited.clone().unwrap_or_else(|| generated.clone()),
        edited: edited.is_some(),
        generated,
        stats,
    })
}

/// Replace the card with the user's `text`, or go back to the generated card with `None`.
pub fn set_card(store: &Store, text: Option<&str>) -> Result<(), StoreError> {
    match text.map(str::trim).filter(|t| !t.is_empty()) {
        Some(t) => store.set_setting(STYLE_CARD_SETTING, t),
        None => store.delete_setting(STYLE_CARD_SETTING),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentence_lengths_skip_headings_and_list_markers() {
        let text = "# Title\nMeasure twice. Ship once, then rest!\n1. Cut the board\n";
        assert_eq!(sentence_lengths(text), vec![2, 4, 3]);
    }

    #[test]
    fn statistics_follow_the_text() {
        let bodies = vec![
            "I measure twice. Then I cut once! Sharp tools matter → always 🪵.".to_string(),
            "Sharp tools matter. Do you agree? I think so.".to_string(),
        ];
        let s = measure(&bodies);
        assert_eq!(s.documents, 2);
        assert!(s.mean_sentence_words < 6.0, "{s:?}");
        assert!(s.questions_per_100_sentences > 10.0);
        assert_eq!(s.favourite_emoji, vec!["🪵".to_string()]);
        assert!(
            s.recurring_phrases
                .contains(&"sharp tools matter".to_string()),
            "{s:?}"
        );
        let card = render_card(&s);
        assert!(
            card.contains("short, punchy") && card.contains("\"sharp tools matter\""),
            "{card}"
        );
    }
}
