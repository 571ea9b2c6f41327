//! Output formats: what each asks of the model, its length target, and the shaping applied to
//! the model's text afterwards (threads split into posts that fit X's limit, lengths capped).

use serde::{Deserialize, Serialize};
use unicode_segmentation::UnicodeSegmentation;

/// X's limit per post.
pub const X_POST_LIMIT: usize = 280;

/// What to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[derive(ts_rs::TS)]
#[ts(export)]
pub enum Format {
    /// A LinkedIn post.
    Linkedin,
    /// An X thread of posts of at most 280 characters.
    Thread,
    /// A blog article: outline, then sections.
    Article,
    /// A newsletter issue.
    Newsletter,
}

/// Word counts a format aims for.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct LengthTarget {
    /// The draft is not allowed to end before this.
    pub min_words: usize,
    /// What the prompt asks for.
    pub target_words: usize,
    /// The draft is cut (at a sentence end) after this.
    pub max_words: usize,
}

impl Format {
    /// All formats.
    pub const ALL: [Format; 4] = [
        Self::Linkedin,
        Self::Thread,
        Self::Article,
        Self::Newsletter,
    ];

    /// Articles and newsletters: long texts, written in parts.
    pub fn is_long(self) -> bool {
        matches!(self, Self::Article | Self::Newsletter)
    }

    /// Name used in prompts.
    pub fn display_name(self) -> &'static str {
        match self {
            Self::Linkedin => "LinkedIn post",
            Self::Thread => "X thread",
            Self::Article => "blog article",
            Self::Newsletter => "newsletter issue",
        }
    }

    /// The platform value the user's own pieces of this format carry (front matter).
    pub fn platform(self) -> &'static str {
        match self {
            Self::Linkedin => "linkedin",
            Self::Thread => "x",
            Self::Article => "blog",
            Self::Newsletter => "newsletter",
        }
    }

    /// The platforms whose writing is this format: its own name (from front matter) and the
    /// platforms whose exports hold it.
    pub fn platforms(self) -> &'static [&'static str] {
        match self {
            Self::Linkedin => &["linkedin"],
            Self::Thread => &["x"],
            Self::Article => &["blog", "medium", "wordpress", "ghost"],
            Self::Newsletter => &["newsletter", "substack"],
        }
    }

    /// Length target, in words.
    pub fn length(self) -> LengthTarget {
        let (min_words, target_words, max_words) = match self {
            // Draft health accepts ±25% of the target; the floor and the cap sit inside that,
            // so a draft that ends at either still passes.
            Self::Linkedin => (120, 150, 185),
            Self::Thread => (100, 130, 160),
            Self::Article => (470, 600, 740),
            Self::Newsletter => (240, 300, 370),
        };
        LengthTarget {
            min_words,
            target_words,
            max_words,
        }
    }

    /// Format rules for the prompt.
    pub fn rules(self) -> &'static str {
        match self {
            Self::Linkedin => "Short paragraphs separated by blank lines; a strong first line; end with one line that lands the point. At most two hashtags.",
            Self::Thread => "Write 4 to 7 posts. Start each post on a new line with its number, like 1/ 2/ 3/. Each post is one or two sentences and under 280 characters.",
            Self::Article => "Plain paragraphs, concrete examples from experience.",
            Self::Newsletter => "Open with a short greeting to readers, cover the topic in a few short paragraphs, close with a sign-off.",
        }
    }
}

impl Format {
    /// The format's name in stored data and on the command line (its serde name).
    pub fn key(self) -> &'static str {
        match self {
            Self::Linkedin => "linkedin",
            Self::Thread => "thread",
            Self::Article => "article",
            Self::Newsletter => "newsletter",
        }
    }
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "linkedin" => Ok(Self::Linkedin),
            "thread" | "x" => Ok(Self::Thread),
            "article" | "blog" => Ok(Self::Article),
            "newsletter" => Ok(Self::Newsletter),
            other => Err(format!(
                "unknown format {other:?} (linkedin, thread, article or newsletter)"
            )),
        }
    }
}

/// Remove the assistant chatter small models wrap around a draft ("Here's a revised
/// version:", "I hope this helps!") from its first and last lines.
pub fn strip_chatter(text: &str) -> String {
    const OPENERS: &[&str] = &[
        "here's",
        "here is",
        "sure",
        "certainly",
        "revised",
        "rewritten",
        "draft:",
        "new version",
        "below is",
        "i hope",
        "let me know",
        "this version",
        "note:",
    ];
    let is_chatter = |line: &str| {
        let l = line
            .trim()
            .trim_start_matches(['*', '#', ' '])
            .to_lowercase();
        // "Draft LinkedIn post:" and similar labels.
        if l.ends_with(':') && l.split_whitespace().count() <= 8 {
            return true;
        }
        let opens = |o: &&str| {
            l.strip_prefix(*o)
                .is_some_and(|rest| !rest.starts_with(|c: char| c.is_alphanumeric()))
        };
        OPENERS.iter().any(opens) && l.split_whitespace().count() <= 25
    };
    let mut lines: Vec<&str> = text.lines().collect();
    while lines
        .first()
        .is_some_and(|l| l.trim().is_empty() || is_chatter(l))
    {
        lines.remove(0);
    }
    while lines
        .last()
        .is_some_and(|l| l.trim().is_empty() || is_chatter(l))
    {
        lines.pop();
    }
    lines
        .iter()
        .map(|l| strip_note_label(l))
        .collect::<Vec<_>>()
        .join("\n")
        .trim()
        .to_string()
}

/// "[2] Some title: text" → "text": small models copy the numbered note format of the context,
/// sometimes twice over ("[1] [1] text").
fn strip_note_label(line: &str) -> &str {
    let Some(after) = strip_bracket_number(line) else {
        return line;
    };
    let mut text = match after.find(": ") {
        Some(i) if i <= 100 => after[i + 2..].trim_start(),
        _ => after,
    };
    while let Some(rest) = strip_bracket_number(text) {
        text = rest;
    }
    text
}

/// The text after a leading "[n]", if `line` starts with one.
fn strip_bracket_number(line: &str) -> Option<&str> {
    let rest = line.trim_start().strip_prefix('[')?;
    let digits = rest.chars().take_while(char::is_ascii_digit).count();
    if digits == 0 {
        return None;
    }
    Some(rest[digits..].strip_prefix(']')?.trim_start())
}

/// Remove X-thread post numbers ("2/ ") from a draft of another format: small models copy them
/// from the user's threads among the exemplars and context. A number that opens a line or
/// follows a sentence's end is one, and so is one before a word that opens a sentence of its
/// own ("A SaaS, 1/ This isn't…"); there the few words before it (at most four since the last
/// sentence's end: the tail of a thread's opening) go too, or they would stand as a fragment
/// ("A SaaS, This isn't…"). "24/7" and "1/2" are kept.
pub fn strip_post_numbers(text: &str) -> String {
    text.lines()
        .map(|line| {
            let mut out = String::with_capacity(line.len());
            let mut rest = line;
            let mut at_sentence_start = true;
            let mut at_word_start = true;
            // Where in `out` the current sentence began.
            let mut sentence_from = 0;
            while !rest.is_empty() {
                if at_word_start {
                    let digits = rest.chars().take_while(char::is_ascii_digit).count();
                    if (1..=2).contains(&digits) && rest[digits..].starts_with("/ ") {
                        let after = rest[digits + 2..].trim_start();
                        if at_sentence_start || after.starts_with(char::is_uppercase) {
                            if !at_sentence_start && word_count(&out[sentence_from..]) <= 4 {
                                out.truncate(sentence_from);
                            }
                            rest = after;
                            at_sentence_start = true;
                            continue;
                        }
                    }
                }
                let Some(c) = rest.chars().next() else { break };
                if at_sentence_start && c != ' ' {
                    sentence_from = out.len();
                }
                out.push(c);
                rest = &rest[c.len_utf8()..];
                at_sentence_start = match c {
                    '.' | '!' | '?' => rest.starts_with(' '),
                    ' ' => at_sentence_start,
                    _ => false,
                };
                at_word_start = c == ' ';
            }
            out
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Drop lines that merely repeat the step's instructions back: a line the instructions hold
/// whole (small models echo "Length: about 150 words…" into drafts), or one that opens with the
/// first three words of one of their sentences ("Rewrite the draft with one problem fixed:",
/// "Write a newsletter issue on: …").
pub fn drop_echoes(text: &str, instructions: &str) -> String {
    let norm = |s: &str| folded(s, char::is_alphanumeric);
    let opening = |s: &str| {
        let words: Vec<&str> = s.split_whitespace().collect();
        (words.len() >= 4).then(|| words[..3].join(" "))
    };
    let source = norm(instructions);
    let openings: Vec<String> = instructions
        .split(['\n', '.', '!', '?'])
        .filter_map(|sentence| opening(&norm(sentence)))
        .collect();
    text.lines()
        .filter(|line| {
            let l = norm(line);
            if l.split_whitespace().count() < 4 {
                return true;
            }
            !source.contains(&l) && !opening(&l).is_some_and(|o| openings.contains(&o))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Drop lines that repeat an earlier line of the same text: small models loop, and a loop's
/// lines differ in a number or a word or two ("… why some businesses …", "… why many
/// businesses …"), or repeat only the first part of the earlier line. A line of six words or
/// more goes when 80% of its words are in an earlier line at most twice its size (a short
/// line of common words is not a repeat of a long paragraph); short lines (a sign-off) may
/// repeat.
pub fn drop_repeats(text: &str) -> String {
    let mut kept: Vec<std::collections::HashSet<String>> = Vec::new();
    text.lines()
        .filter(|line| {
            if word_count(line) < 6 {
                return true;
            }
            let words: std::collections::HashSet<String> = folded(line, char::is_alphabetic)
                .split(' ')
                .map(str::to_string)
                .collect();
            let repeats = kept.iter().any(|earlier| {
                let shared = earlier.intersection(&words).count();
                shared * 10 >= words.len() * 8 && words.len() * 2 >= earlier.len()
            });
            if !repeats {
                kept.push(words);
            }
            !repeats
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `text` lowercased, with only the characters `keep` accepts and single spaces: two lines
/// that differ only in punctuation, case or spacing (or numbers, if `keep` drops digits) fold
/// to the same string.
fn folded(text: &str, keep: fn(char) -> bool) -> String {
    text.chars()
        .filter(|c| keep(*c) || c.is_whitespace())
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// Words in `text`.
pub fn word_count(text: &str) -> usize {
    text.unicode_words().count()
}

/// Length of `text` as X counts it: characters outside Latin and common punctuation (CJK,
/// emoji) weigh two.
pub fn x_length(text: &str) -> usize {
    text.chars()
        .map(|c| {
            if (c as u32) < 0x1100 || (0x2000..0x2100).contains(&(c as u32)) {
                1
            } else {
                2
            }
        })
        .sum()
}

/// Cut `text` after at most `max_words` words, at the end of a sentence when possible.
pub fn cap_words(text: &str, max_words: usize) -> String {
    if word_count(text) <= max_words {
        return text.trim().to_string();
    }
    let mut words = 0;
    let mut cut = 0;
    for (start, sentence) in text.split_sentence_bound_indices() {
        let n = word_count(sentence);
        if words + n > max_words {
            break;
        }
        words += n;
        cut = start + sentence.len();
    }
    if cut == 0 {
        // One enormous sentence: cut at a word boundary.
        let mut end = 0;
        for (i, (start, w)) in text.unicode_word_indices().enumerate() {
            if i == max_words {
                break;
            }
            end = start + w.len();
        }
        cut = end;
    }
    text[..cut].trim().to_string()
}

/// Split a model's thread text into posts of at most [`X_POST_LIMIT`] (X-weighted) characters,
/// numbered `1/`, `2/`, …. Numbered lines start posts; long posts are split at sentence ends,
/// then at word boundaries.
pub fn split_thread(text: &str) -> Vec<String> {
    let mut raw: Vec<String> = Vec::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.is_empty() {
            continue;
        }
        match strip_number(trimmed) {
            Some(rest) => raw.push(rest.to_string()),
            None => match raw.last_mut() {
                Some(last) if !last.is_empty() => {
                    last.push(' ');
                    last.push_str(trimmed);
                }
                _ => raw.push(trimmed.to_string()),
            },
        }
    }
    // Room for the widest number prefix ("12/ ").
    let budget = X_POST_LIMIT - 4;
    let mut pieces: Vec<String> = Vec::new();
    for post in raw.iter().map(|p| p.trim()).filter(|p| !p.is_empty()) {
        let mut current = String::new();
        for sentence in post.split_sentence_bounds() {
            for part in fit_words(sentence.trim(), budget) {
                let joined = if current.is_empty() {
                    part.clone()
                } else {
                    format!("{current} {part}")
                };
                if x_length(&joined) <= budget {
                    current = joined;
                } else {
                    pieces.push(std::mem::take(&mut current));
                    current = part;
                }
            }
        }
        if !current.is_empty() {
            pieces.push(current);
        }
    }
    pieces
        .iter()
        .enumerate()
        .map(|(i, p)| format!("{}/ {}", i + 1, p))
        .collect()
}

/// `text` split at word boundaries into parts of at most `budget` weighted characters.
fn fit_words(text: &str, budget: usize) -> Vec<String> {
    if x_length(text) <= budget {
        return if text.is_empty() {
            vec![]
        } else {
            vec![text.to_string()]
        };
    }
    let mut parts = Vec::new();
    let mut current = String::new();
    for word in text.split_whitespace() {
        // A single word over the budget (a long URL) is cut by characters.
        let mut word = word.to_string();
        while x_length(&word) > budget {
            let head: String = word.chars().take(budget / 2).collect();
            word = word.chars().skip(budget / 2).collect();
            if !current.is_empty() {
                parts.push(std::mem::take(&mut current));
            }
            parts.push(head);
        }
        let joined = if current.is_empty() {
            word.clone()
        } else {
            format!("{current} {word}")
        };
        if x_length(&joined) <= budget {
            current = joined;
        } else {
            parts.push(std::mem::replace(&mut current, word));
        }
    }
    if !current.is_empty() {
        parts.push(current);
    }
    parts
}

/// The text after a leading post number ("3/", "3.", "3)", "(3/7)"), if the line has one.
fn strip_number(line: &str) -> Option<&str> {
    let l = line.trim_start_matches(['(', '*', '#', ' ']);
    let digits = l.chars().take_while(|c| c.is_ascii_digit()).count();
    if digits == 0 || digits > 2 {
        return None;
    }
    let rest = &l[digits..];
    let rest = rest
        .strip_prefix('/')
        .map(|r| r.trim_start_matches(|c: char| c.is_ascii_digit()))
        .or_else(|| rest.strip_prefix('.'))
        .or_else(|| rest.strip_prefix(')'))?;
    Some(rest.trim_start_matches([')', ' ', '*']).trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_are_split_into_numbered_posts_within_the_limit() {
        let long = "Sharp tools, small batches. ".repeat(30);
        let text = format!(
            "1/ First post about jigs.\n2. Second one\ncontinues here.\n3/ {long}\n(4/4) Last 🪵"
        );
        let posts = split_thread(&text);
        assert!(posts.len() >= 5, "{posts:?}");
        assert_eq!(posts[0], "1/ First post about jigs.");
        assert_eq!(posts[1], "2/ Second one continues here.");
        assert!(posts.last().unwrap().ends_with("Last 🪵"));
        for p in &posts {
            assert!(x_length(p) <= X_POST_LIMIT, "{} > 280: {p}", x_length(p));
        }
    }

    #[test]
    fn an_unbroken_wall_of_text_still_fits() {
        let posts = split_thread(&"x".repeat(1000));
        assert!(posts.iter().all(|p| x_length(p) <= X_POST_LIMIT));
        assert_eq!(posts.iter().map(|p| p.len() - 3).sum::<usize>(), 1000);
    }

    #[test]
    fn echoed_instructions_are_dropped() {
        let rules =
            "Write a post.\nLength: about 150 words. Short paragraphs separated by blank lines.";
        let text = "Jigs matter.\nLength: about 150 words. Short paragraphs separated by blank lines.\nMeasure twice.";
        assert_eq!(drop_echoes(text, rules), "Jigs matter.\nMeasure twice.");
        let revise = "Problems to fix:\n\nRewrite the draft and fix these problems. About 150 words.\nWrite only the new LinkedIn post.";
        let text = "Jigs matter, and here is why.\nRewrite the draft with one problem fixed by making one sentence:\nWrite only the new LinkedIn post with care\nMeasure twice, cut once, always.";
        assert_eq!(
            drop_echoes(text, revise),
            "Jigs matter, and here is why.\nMeasure twice, cut once, always."
        );
    }

    #[test]
    fn chatter_around_a_draft_is_removed() {
        let text = "Here's a revised version:\n\nJigs are care you can repeat.\nMeasure twice.\n\nI hope this helps!";
        assert_eq!(
            strip_chatter(text),
            "Jigs are care you can repeat.\nMeasure twice."
        );
        assert_eq!(strip_chatter("Sure thing."), "");
        assert_eq!(strip_chatter("Surely not.\nKept."), "Surely not.\nKept.");
        assert_eq!(
            strip_chatter(
                "Draft LinkedIn post:\n[2] Pricing: Charge for the whole shop.\n[3] No label here"
            ),
            "Charge for the whole shop.\nNo label here"
        );
    }

    #[test]
    fn labels_and_post_numbers_copied_from_the_prompt_are_removed() {
        assert_eq!(
            strip_chatter("[1] [1] For me, it was the small things.\n[2] Kept [3] inline."),
            "For me, it was the small things.\nKept [3] inline."
        );
        assert_eq!(
            strip_post_numbers(
                "2/ Small batches ship. 10/ They're proud! 3/ Done\nOpen 24/7. Half is 1/2 a day.\nA SaaS, 1/ This is a product. Split it 50/ 50 or 3/ more."
            ),
            "Small batches ship. They're proud! Done\nOpen 24/7. Half is 1/2 a day.\nThis is a product. Split it 50/ 50 or 3/ more."
        );
        // A longer run of words before the number is a sentence of its own, and stays.
        assert_eq!(
            strip_post_numbers(
                "Pricing is hard. We ship small things every week, 2/ Then we rest."
            ),
            "Pricing is hard. We ship small things every week, Then we rest."
        );
        assert_eq!(
            strip_post_numbers("Pricing is hard. A SaaS, 2/ Then we rest."),
            "Pricing is hard. Then we rest."
        );
    }

    #[test]
    fn a_looping_model_s_repeated_lines_are_dropped() {
        let text = "Rest is part of the schedule, always.\nThis is what I say next [8] On-call is hard.\nThanks!\nThis is what I say next [9] On-call is hard.\nThanks!\nThe answer to why some businesses push for more is that we forgot how.\nThe answer to why many businesses push for more is that we forgot how.\nThat is what it takes, and it is hard, and that is why the shop closes at five every Friday.\nThe answer to why some businesses push for more\nIt is what it is, and that is that.";
        assert_eq!(
            drop_repeats(text),
            "Rest is part of the schedule, always.\nThis is what I say next [8] On-call is hard.\nThanks!\nThanks!\nThe answer to why some businesses push for more is that we forgot how.\nThat is what it takes, and it is hard, and that is why the shop closes at five every Friday.\nIt is what it is, and that is that."
        );
    }

    #[test]
    fn capping_words_ends_at_a_sentence() {
        let text = "One two three. Four five six. Seven eight nine.";
        assert_eq!(cap_words(text, 7), "One two three. Four five six.");
        assert_eq!(cap_words(text, 100), text);
        assert_eq!(cap_words("a b c d e", 2), "a b");
    }
}
