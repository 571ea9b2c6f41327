//! Back-translation: the request each passage answers, written by the local model from the
//! passage and its title, and checked to be a topic rather than the passage's first words.

use super::*;

/// Words that show the model echoed the question instead of answering it.
pub(super) const ECHO_WORDS: &[&str] = &[
    "json",
    "this text",
    "request",
    "writer",
    "subject",
    "topic",
    "blog article",
    "linkedin post",
    "newsletter issue",
    "x thread",
    "?",
];

/// The model's topic cleaned up, if it is a real answer: not an echo of the prompt, at least two
/// words, and grounded in the passage (it shares a content word with it).
pub(super) fn usable_topic(topic: &str, passage: &str) -> Option<String> {
    let mut t = topic.trim();
    for prefix in [
        "The main subject of this text is ",
        "The main subject of the text is ",
        "The main subject is ",
        "This text is about ",
    ] {
        if let Some(rest) = t.strip_prefix(prefix) {
            t = rest;
        }
    }
    let t = t.trim().trim_end_matches([',', '.', ';', ':']).trim();
    // "The Hardest Commission Ever" → "the hardest commission ever": it follows "Write a post
    // about:"; names the passage always capitalises ("Japanese", "Friday") keep their capital.
    let t = &sentence_case(t, passage);
    let lower = t.to_lowercase();
    let content: Vec<&str> = lower
        .split_whitespace()
        .filter(|w| !crate::prompt::grammar::CONNECTORS.contains(w))
        .collect();
    // "trick trick", "nell is a nell": a repeated content word is a stuck model, not a topic.
    let repeated = content
        .iter()
        .enumerate()
        .any(|(i, w)| content[..i].contains(w));
    if content.len() < 2 || repeated || ECHO_WORDS.iter().any(|w| lower.contains(w)) {
        return None;
    }
    let passage_lower = passage.to_lowercase();
    // A phrase, not a bag of the passage's words: two of its words stand side by side in the
    // passage ("the rule of three", not "the ever of the lot").
    let passage_words: Vec<&str> = passage_lower
        .split(|c: char| !(c.is_alphanumeric() || c == '-'))
        .filter(|w| !w.is_empty())
        .collect();
    let topic_words: Vec<&str> = lower.split_whitespace().collect();
    let phrase = topic_words.windows(2).any(|pair| {
        pair.iter()
            .any(|w| !crate::prompt::grammar::CONNECTORS.contains(w))
            && passage_words.windows(2).any(|p| p == pair)
    });
    if !phrase {
        return None;
    }
    let grounded = lower
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.len() >= 4)
        .any(|w| passage_lower.contains(w));
    grounded.then(|| t.to_string())
}

/// The request a passage gets when the model cannot name one: its document's title, with the
/// section heading when the title does not already say it.
pub(super) fn title_request(title: &str, heading: Option<&str>) -> String {
    match heading {
        Some(h) if !title.contains(h) => format!("{title}: {h}"),
        _ => title.to_string(),
    }
}

/// Whether `topic` is [`title_request`]'s fallback for a document titled `title`, not a request
/// the model named: such topics are not used as evaluation topics.
pub fn is_title_request(topic: &str, title: &str) -> bool {
    topic == title || topic.starts_with(&format!("{title}: "))
}

/// The back-translation method, part of the instruction cache's key with the template: a change
/// to how requests are made (the grammar, the word list) must not reuse old answers.
pub(super) const BACK_TRANSLATION: &str = "grounded-4";

/// Most words a back-translation may choose from.
pub(super) const TOPIC_WORDS: usize = 64;

/// The content words a request for `passage` may use: the title's and heading's first (they
/// say what the piece is about), then the passage's, lower-cased, in order, without function
/// words.
pub(super) fn topic_words(
    author: &str,
    title: &str,
    heading: Option<&str>,
    passage: &str,
) -> Vec<String> {
    // The author's own name is who writes, not what the piece is about.
    let mut out: Vec<String> = Vec::new();
    let names: Vec<String> = author.split_whitespace().map(str::to_lowercase).collect();
    let text = format!("{title} {} {passage}", heading.unwrap_or(""));
    for w in text.split(|c: char| !(c.is_alphanumeric() || c == '-')) {
        let w = w.trim_matches('-').to_lowercase();
        if w.chars().count() < 3
            || w.chars().all(|c| c.is_ascii_digit())
            || crate::prompt::words::FUNCTION_WORDS.contains(&w.as_str())
            || crate::prompt::grammar::CONNECTORS.contains(&w.as_str())
            || out.contains(&w)
            || names.contains(&w)
        {
            continue;
        }
        out.push(w);
        if out.len() == TOPIC_WORDS {
            break;
        }
    }
    out
}

/// `text` in lower case except the words that `passage` only ever capitalises (names).
pub(super) fn sentence_case(text: &str, passage: &str) -> String {
    let lower_in_passage: HashSet<&str> = passage
        .split(|c: char| !(c.is_alphanumeric() || c == '-'))
        .filter(|w| w.chars().next().is_some_and(char::is_lowercase))
        .collect();
    text.split_whitespace()
        .map(|w| {
            let lower = w.to_lowercase();
            let is_name = w.chars().next().is_some_and(char::is_uppercase)
                && !lower_in_passage.contains(lower.as_str())
                && !crate::prompt::grammar::CONNECTORS.contains(&lower.as_str())
                && passage.contains(w);
            if is_name {
                w.to_string()
            } else {
                lower
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Tries at naming a passage's request: greedy first, then sampled with new seeds.
pub(super) const BACK_TRANSLATION_TRIES: u32 = 3;

/// Ask the model which request `passage` answers, in the passage's own words (a grammar
/// limits the phrase to [`topic_words`] and connectors), keeping the first answer
/// [`usable_topic`] accepts; `None` when no try gives one.
pub(super) fn back_translate(
    model: &ChatModel,
    templates: &Templates,
    format: Format,
    passage: &str,
    words: &[String],
) -> Option<String> {
    (0..BACK_TRANSLATION_TRIES).find_map(|attempt| {
        let sampling = if attempt == 0 {
            Sampling::greedy()
        } else {
            Sampling {
                temperature: 0.8,
                seed: 0x7717 + attempt,
                ..Sampling::default()
            }
        };
        let topic: Topic = crate::prompt::structured::step_sampled(
            model,
            templates,
            ("instruct", "instruct"),
            minijinja::context! {
                format_name => format.display_name(),
                passage => crate::prompt::format::cap_words(passage, 220),
            },
            crate::prompt::grammar::grounded_topic_grammar(words),
            max_tokens_for(1),
            sampling,
        )
        .ok()?;
        usable_topic(topic.topic.trim().trim_end_matches('.'), passage)
    })
}
