//! Draft health: deterministic checks that say whether a draft could be posted as it is.
//!
//! A small model's failures are visible on the page, so they are measured on the page:
//! fragments ("This is where [2]"), loops, pasted source text, leftover markup and prompt
//! labels, the wrong length or shape for the format, drift from the topic, and specifics the
//! user never wrote about (a twin writes about what its author knows). Every draft gets these
//! checks; they are stored with its trace, printed by `twin draft`, shown in the app and
//! counted by evaluation. A draft that passes every hard check is *publishable*.
//!
//! The text checks are pure functions of the draft; what needs the library (which words the
//! user has written, embedding similarities, the authorship score) comes in through
//! [`Evidence`], so each check is unit-tested on hand-made drafts.

use crate::prompt::format::{self, Format, X_POST_LIMIT};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use unicode_segmentation::UnicodeSegmentation;

mod form;
mod grounding;
mod text;
pub use form::*;
pub use grounding::*;
pub use text::*;

/// A verbatim run longer than this many words, shared with a source, is pasting, not voice.
pub const MAX_SHARED_RUN: usize = 12;
/// A draft may be this far (as a share) from its format's target length.
pub const LENGTH_TOLERANCE: f64 = 0.25;
/// More than this share of repeated word 4-grams is a loop. The sample writing's pieces stay
/// under 0.07 (unit test `the_sample_writing_is_healthy`).
pub const MAX_REPEATED_4GRAMS: f64 = 0.10;
/// The draft must be at least this much more similar to its topic than to the nearest
/// unrelated topic.
pub const ON_TOPIC_MARGIN: f32 = 0.05;

/// Topics no draft is about, for the on-topic check's baseline: a draft about the request is
/// nearer its topic than to any of these. Those too near the request itself are left out.
pub const UNRELATED_TOPICS: [&str; 8] = [
    "a recipe for sourdough bread",
    "the history of the Roman empire",
    "how to train a puppy",
    "a review of last night's football match",
    "how volcanoes form",
    "planning a wedding on a budget",
    "the best hiking trails in the Alps",
    "learning to play the violin",
];

/// One check's outcome.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, ts_rs::TS)]
#[ts(export)]
pub struct Check {
    /// Short name: `fragments`, `looping`, `copying`, `leftovers`, `format`, `on_topic`,
    /// `invented`, `voice`.
    pub name: String,
    /// A failed hard check makes the draft unpublishable; a soft one is information.
    pub hard: bool,
    /// Whether the draft passed.
    pub passed: bool,
    /// The measured value (a count, a share, a similarity), for tables.
    pub value: f64,
    /// What was found, for a person: the offending lines, terms or numbers.
    pub detail: String,
}

/// All checks of one draft.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, ts_rs::TS)]
#[ts(export)]
pub struct Health {
    /// Every check, hard ones first.
    pub checks: Vec<Check>,
    /// Every hard check passed.
    pub publishable: bool,
}

impl Health {
    /// `checks`, publishable when every hard one passed.
    pub fn of(checks: Vec<Check>) -> Self {
        let publishable = checks.iter().all(|c| !c.hard || c.passed);
        Self {
            checks,
            publishable,
        }
    }

    /// Whether a text with these checks is the better choice than one with `other`'s:
    /// publishable beats not; then fewer failed hard checks.
    pub fn beats(&self, other: &Health) -> bool {
        (self.publishable, std::cmp::Reverse(self.failures().count()))
            > (
                other.publishable,
                std::cmp::Reverse(other.failures().count()),
            )
    }

    /// The hard checks that failed.
    pub fn failures(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| c.hard && !c.passed)
    }

    /// One line for a terminal: "publishable" or what stops it.
    pub fn summary(&self) -> String {
        if self.publishable {
            return "publishable (all checks passed)".into();
        }
        let failed: Vec<String> = self
            .failures()
            .map(|c| format!("{}: {}", c.name, c.detail))
            .collect();
        format!("not publishable: {}", failed.join("; "))
    }

    /// The check called `name`.
    pub fn check(&self, name: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.name == name)
    }
}

/// How near a draft is to its topic and to unrelated ones (cosine of embeddings).
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
pub struct TopicSimilarity {
    /// Draft ↔ topic.
    pub topic: f32,
    /// Draft ↔ the nearest of [`UNRELATED_TOPICS`].
    pub unrelated: f32,
}

/// What the checks need beyond the draft's text.
pub struct Evidence<'a> {
    /// The request's topic.
    pub topic: &'a str,
    /// Texts the prompt showed the model (retrieved context and exemplars).
    pub sources: &'a [String],
    /// Whether the user's writing contains a word (lowercase); names and numbers the draft
    /// asserts must pass this or appear in the topic.
    pub known: &'a dyn Fn(&str) -> bool,
    /// Embedding similarities, when an embedder was at hand.
    pub similarity: Option<TopicSimilarity>,
    /// "Sounds like you" probability, when a classifier is fitted.
    pub sounds_like_you: Option<f64>,
}

/// Run every check on `text`, a finished draft in `format`.
pub fn assess(text: &str, format: Format, evidence: &Evidence<'_>) -> Health {
    let mut checks = part_checks(text, format, evidence);
    checks.insert(4, shape(text, format));
    if let Some(s) = evidence.similarity {
        checks.push(on_topic(s));
    }
    if let Some(p) = evidence.sounds_like_you {
        checks.push(Check {
            name: "voice".into(),
            hard: false,
            passed: p >= 0.5,
            value: p,
            detail: format!("sounds like you {:.0}%", p * 100.0),
        });
    }
    Health::of(checks)
}

/// The checks that a part of a draft (an article's section) can pass or fail on its own:
/// fragments, loops, pasting, leftovers and invented specifics. Length, shape and topic belong
/// to the whole draft.
pub fn assess_part(text: &str, format: Format, evidence: &Evidence<'_>) -> Health {
    Health::of(part_checks(text, format, evidence))
}

fn part_checks(text: &str, format: Format, evidence: &Evidence<'_>) -> Vec<Check> {
    vec![
        fragments(text, format),
        looping(text, format),
        copying(text, evidence.sources),
        leftovers(text, format),
        invented(text, evidence.topic, evidence.known),
    ]
}

/// What a draft's topic is measured against: the topic's embedding and those of the
/// [`UNRELATED_TOPICS`] not near it. Embedded once per draft; every candidate text of the draft
/// is measured against the same baseline.
pub struct TopicBaseline {
    topic: Vec<f32>,
    unrelated: Vec<Vec<f32>>,
}

impl TopicBaseline {
    /// Embed `topic` and the unrelated topics in one batch.
    pub fn new(
        embedder: &crate::engine::Embedder,
        topic: &str,
    ) -> Result<Self, crate::engine::EngineError> {
        let mut texts: Vec<&str> = vec![topic];
        texts.extend(UNRELATED_TOPICS);
        let mut vectors = embedder.embed(&texts)?.into_iter();
        let topic = vectors.next().unwrap_or_default();
        // An "unrelated" topic near the request (a user writing about the violin) is no baseline.
        let unrelated = vectors
            .filter(|u| super::retrieve::cosine(u, &topic) < 0.5)
            .collect();
        Ok(Self { topic, unrelated })
    }

    fn similarity(&self, draft: &[f32]) -> TopicSimilarity {
        let cos = super::retrieve::cosine;
        TopicSimilarity {
            topic: cos(draft, &self.topic),
            unrelated: self
                .unrelated
                .iter()
                .map(|u| cos(draft, u))
                .fold(0.0f32, f32::max),
        }
    }
}

/// Every check of `text` against the library: names and numbers are looked up in the user's
/// writing, the draft is embedded and compared with the `baseline` of its topic.
pub fn measure(
    store: &crate::store::Store,
    embedder: &crate::engine::Embedder,
    baseline: &TopicBaseline,
    topic: &str,
    format: Format,
    text: &str,
    sources: &[String],
) -> Result<Health, crate::engine::EngineError> {
    let _span = tracing::info_span!("health").entered();
    let draft = embedder
        .embed(&[text])?
        .into_iter()
        .next()
        .unwrap_or_default();
    Ok(assess_against(
        store,
        topic,
        format,
        text,
        sources,
        Some(baseline.similarity(&draft)),
    ))
}

/// [`assess_part`] against the library: names and numbers are looked up in the user's writing.
pub fn measure_part(
    store: &crate::store::Store,
    topic: &str,
    format: Format,
    text: &str,
    sources: &[String],
) -> Health {
    let _span = tracing::info_span!("health_of_part").entered();
    assess_against(store, topic, format, text, sources, None)
}

/// The whole draft's checks with a topic `similarity`, a part's without one.
fn assess_against(
    store: &crate::store::Store,
    topic: &str,
    format: Format,
    text: &str,
    sources: &[String],
    similarity: Option<TopicSimilarity>,
) -> Health {
    let evidence = Evidence {
        topic,
        sources,
        known: &|w: &str| known_word(store, w),
        similarity,
        sounds_like_you: None,
    };
    if similarity.is_some() {
        assess(text, format, &evidence)
    } else {
        assess_part(text, format, &evidence)
    }
}

/// Whether the user's writing has `word`. A word the index cannot look up is given the benefit
/// of the doubt, not called invented.
fn known_word(store: &crate::store::Store, word: &str) -> bool {
    store.mentions(word).unwrap_or(true)
}

fn hard(name: &str, passed: bool, value: f64, detail: String) -> Check {
    Check {
        name: name.into(),
        hard: true,
        passed,
        value,
        detail,
    }
}

/// A hard check that passes when nothing was `found`; its value is how much was.
fn found_check(name: &str, found: &[String], clean: &str, problems: &str) -> Check {
    hard(
        name,
        found.is_empty(),
        found.len() as f64,
        if found.is_empty() {
            clean.to_string()
        } else {
            problems.to_string()
        },
    )
}

/// Short quote of a line for a check's detail.
fn quote(line: &str) -> String {
    let words: Vec<&str> = line.split_whitespace().collect();
    if words.len() <= 8 {
        format!("\"{}\"", words.join(" "))
    } else {
        format!("\"{}…\"", words[..8].join(" "))
    }
}

#[cfg(test)]
mod tests;
