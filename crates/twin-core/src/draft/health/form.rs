//! Checks on the form: prompt labels and talk to the requester left in the draft, and the
//! length and shape the format asks for.

use super::*;

/// Labels and instructions from the prompts that small models copy into their answer.
pub(super) const PROMPT_LABELS: &[&str] = &[
    "outline:",
    "draft:",
    "notes:",
    "plan:",
    "critique:",
    "problems to fix",
    "problems:",
    "length:",
    "write only",
    "follow this plan",
    "style card",
    "how the author writes",
    "examples of",
    "revised draft",
    "rewrite the draft",
    "rewrite the post",
    "rewrite this",
    "here is a revised",
    "here's a revised",
    "here is the revised",
    "here's the revised",
    "here is a rewritten",
    "here's a rewritten",
    "here is your",
    "here's your",
    "here is a draft",
    "here's a draft",
    "sure, here",
    "as an ai",
    "word count",
];

/// The model talking to whoever asked for the draft, anywhere in a line: a reader of the post
/// would see an assistant apologising or handing over "my final post". Only phrases a post in
/// the user's own voice would not use.
pub(super) const ASSISTANT_TALK: &[&str] = &[
    "it seems i made an error",
    "it seems i made a mistake",
    "i apologize for",
    "apologies for the confusion",
    "as you've highlighted",
    "as you have highlighted",
    "as you mentioned in your",
    "here is my final",
    "here's my final",
    "here is the final version",
    "here's the final version",
];

/// A run of this many words from the prompts' instructions, in a draft, is the model copying
/// its instructions: "No numbered list, no heading — just the section text that shows what you
/// did every single day." (an article's section, 2026-12-04). Five: the instructions' shorter
/// runs ("a strong first line") are ordinary English.
const ECHO_WORDS: usize = 5;

/// Every [`ECHO_WORDS`]-word run of the writing prompts' instructions and the formats' rules,
/// folded like a draft's words.
fn instruction_runs() -> &'static HashSet<Vec<String>> {
    static RUNS: std::sync::OnceLock<HashSet<Vec<String>>> = std::sync::OnceLock::new();
    RUNS.get_or_init(|| {
        crate::prompt::templates::writing_instructions()
            .into_iter()
            .chain(Format::ALL.iter().map(|f| f.rules()))
            .flat_map(|line| {
                folded_words(line)
                    .windows(ECHO_WORDS)
                    .map(<[String]>::to_vec)
                    .collect::<Vec<_>>()
            })
            .collect()
    })
}

/// The first run of the prompts' instructions in a sentence's folded `words`, if any.
pub(in crate::draft) fn echoed_instruction(words: &[String]) -> Option<String> {
    let runs = instruction_runs();
    words
        .windows(ECHO_WORDS)
        .find(|w| runs.contains(*w))
        .map(|w| w.join(" "))
}

/// A prompt label that hands over another version of the text ("Here is a rewritten version
/// with more comments:") opening a sentence inside `line`, not at its start: "I wrote about
/// this before. Here is a rewritten version…" (an X thread, 2026-12-04). Sentences are split
/// before lowercasing: a lowercase sentence start hides the boundary.
fn announced_version(line: &str) -> Option<&'static str> {
    line.unicode_sentences().skip(1).find_map(|sentence| {
        let opening = sentence.trim_start().to_lowercase();
        PROMPT_LABELS.iter().copied().find(|label| {
            ["here", "sure", "rewrite", "revised"]
                .iter()
                .any(|w| label.starts_with(w))
                && opening.starts_with(label)
        })
    })
}

/// Markup and prompt text a reader would see as debris: Markdown headings where the platform
/// shows plain text, `##` inside a line, hashtags run together, citation markers, prompt
/// labels, template or chat-template tokens, bold markers on plain-text platforms.
pub fn leftovers(text: &str, format: Format) -> Check {
    let mut found: Vec<String> = Vec::new();
    let plain_text_platform = matches!(format, Format::Linkedin | Format::Thread);
    for raw in content_lines(text, format) {
        let lower = raw.to_lowercase();
        if is_heading(raw) && !allows_headings(format) {
            found.push(format!("heading {}", quote(raw)));
        }
        let body = raw.trim_start_matches('#');
        if is_heading(raw) && is_placeholder_heading(body) {
            found.push(format!("placeholder heading {}", quote(raw)));
        }
        if body.contains("##") {
            found.push(format!("\"##\" in {}", quote(raw)));
        }
        if raw.split_whitespace().any(is_run_together_hashtag) {
            found.push(format!("hashtags run together in {}", quote(raw)));
        }
        if citation_markers(raw) > 0 {
            found.push(format!("citation marker in {}", quote(raw)));
        }
        let opening = lower.trim_start_matches(['*', '#', '-', ' ', '_']);
        if let Some(label) = PROMPT_LABELS.iter().find(|l| opening.starts_with(**l)) {
            found.push(format!("prompt text \"{label}\""));
        } else if let Some(label) = announced_version(raw) {
            found.push(format!("prompt text \"{label}\""));
        }
        if let Some(run) = echoed_instruction(&folded_words(raw)) {
            found.push(format!("the prompt's instructions (\"{run}…\")"));
        }
        let lower_quotes = lower.replace('’', "'");
        if let Some(talk) = ASSISTANT_TALK.iter().find(|t| lower_quotes.contains(**t)) {
            found.push(format!("the model talking to you (\"{talk}\")"));
        }
        for token in ["{{", "{%", "<|", "</s>", "<think>", "<end_of_turn>"] {
            if raw.contains(token) {
                found.push(format!("template token \"{token}\""));
            }
        }
        if has_markup_tag(raw) {
            found.push(format!("markup tag in {}", quote(raw)));
        }
        if plain_text_platform && raw.contains("**") {
            found.push(format!("bold markers in {}", quote(raw)));
        }
        if raw.chars().all(|c| matches!(c, '-' | '=' | '*' | '_')) && raw.len() >= 3 {
            found.push("separator line".into());
        }
    }
    found_check(
        "leftovers",
        &found,
        "no markup or prompt text",
        &found.join(", "),
    )
}

/// Length within [`LENGTH_TOLERANCE`] of the format's target; threads numbered in order with
/// every post within X's limit; articles with a title and at least two sections with text.
pub fn shape(text: &str, format: Format) -> Check {
    let target = format.length().target_words as f64;
    let words = format::word_count(text) as f64;
    let (low, high) = (
        target * (1.0 - LENGTH_TOLERANCE),
        target * (1.0 + LENGTH_TOLERANCE),
    );
    let mut problems = Vec::new();
    if words < low || words > high {
        problems.push(format!(
            "{words:.0} words, the target is {target:.0} ({low:.0}–{high:.0})"
        ));
    }
    match format {
        Format::Thread => {
            let lines: Vec<&str> = text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect();
            for (i, line) in lines.iter().enumerate() {
                match post_number(line) {
                    Some((n, _)) if n == i + 1 => {}
                    _ => problems.push(format!("post {} is not numbered {}/", i + 1, i + 1)),
                }
                if format::x_length(line) > X_POST_LIMIT {
                    problems.push(format!("post {} is over {X_POST_LIMIT} characters", i + 1));
                }
            }
            if lines.len() < 3 {
                problems.push(format!("{} posts; a thread has at least 3", lines.len()));
            }
        }
        Format::Article => {
            let has_title = text.trim_start().starts_with("# ");
            let sections = text
                .split("\n## ")
                .skip(1)
                .filter(|s| format::word_count(s) >= 40)
                .count();
            if !has_title {
                problems.push("no title".into());
            }
            if sections < 2 {
                problems.push(format!("{sections} sections with text; at least 2"));
            }
        }
        Format::Linkedin | Format::Newsletter => {}
    }
    hard(
        "format",
        problems.is_empty(),
        words / target,
        if problems.is_empty() {
            format!("{words:.0} words (target {target:.0})")
        } else {
            problems.join("; ")
        },
    )
}

/// A markup tag (`<Title>`, `</SECTION1`) in a line: `<` then a letter or `/`, and a `>` or the
/// line's end after the tag name. "a < b" and "<3" are text.
fn has_markup_tag(line: &str) -> bool {
    line.match_indices('<').any(|(i, _)| {
        let rest = &line[i + 1..];
        let name: String = rest
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect();
        let after = &rest[rest.len() - rest.trim_start_matches('/').len() + name.len()..];
        name.starts_with(|c: char| c.is_ascii_alphabetic())
            && (after.starts_with('>') || after.trim().is_empty())
    })
}
