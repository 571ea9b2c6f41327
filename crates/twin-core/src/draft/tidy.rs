//! Tidying a model's text into something a reader could be shown: the repairs that match the
//! [`health`](super::health) checks, so that what the checks would fail on is fixed where it
//! can be fixed without inventing words.
//!
//! - citation markers the model copied from the prompt's notes (`[2]`) go; citations are
//!   attached per paragraph afterwards, never written into the text;
//! - a line cut off mid-sentence is joined to the next when that one continues it (lowercase
//!   start), else cut back to its last full sentence, else dropped: "This is where [2]" leaves
//!   nothing behind;
//! - hashtags run together (`#finance#ethics##`) are split, and a post's hashtags are gathered
//!   on its last line;
//! - Markdown a platform shows as plain text (headings in a post, `**bold**`, `---`) is removed;
//! - a sentence that says an earlier one again, or repeats its phrase (a loop), or copies the
//!   prompt's instructions ("no numbered list, no heading"), goes.

use super::health::{
    allows_headings, echoed_instruction, ends_as_sentence, folded_words, is_full_sentence,
    is_hashtag_line, is_heading, is_list_item, is_run_together_hashtag, is_sign_off, last_word,
    post_number, strip_list_marker, without_citations, would_loop, DANGLING,
};
use crate::prompt::format::Format;
use unicode_segmentation::UnicodeSegmentation;

/// Hashtags a post keeps at most.
const MAX_HASHTAGS: usize = 3;

/// `text` tidied for `format` (see the module doc).
pub fn tidy(text: &str, format: Format) -> String {
    let plain = matches!(format, Format::Linkedin | Format::Thread);
    let mut hashtags: Vec<String> = Vec::new();
    let mut lines: Vec<String> = Vec::new();
    for raw in text.lines() {
        let raw = raw.trim();
        if raw.is_empty() {
            lines.push(String::new());
            continue;
        }
        if raw.len() >= 3 && raw.chars().all(|c| matches!(c, '-' | '=' | '*' | '_')) {
            continue;
        }
        let (number, body) = thread_number(raw, format);
        let mut body = without_citations(body);
        if plain {
            body = body.replace("**", "").replace("__", "");
        }
        if is_heading(&body) {
            if allows_headings(format) {
                lines.push(body);
            } else {
                // A heading in a post: kept as a sentence if it is one, else dropped.
                let text = body.trim_start_matches('#').trim().to_string();
                if ends_as_sentence(&text) {
                    lines.push(text);
                }
            }
            continue;
        }
        // Run-together hashtags inside a line ("where #finance#ethics## 3.") are debris.
        let (mut words, mut tags) = split_hashtags(&body);
        if words.contains('#') {
            let (clean, junk): (Vec<&str>, Vec<&str>) = words
                .split_whitespace()
                .partition(|t| !is_run_together_hashtag(t));
            tags.extend(split_hashtags(&junk.join(" ")).1);
            words = clean.join(" ");
        }
        if format == Format::Linkedin {
            for t in tags {
                if !hashtags.iter().any(|h| h.eq_ignore_ascii_case(&t)) {
                    hashtags.push(t);
                }
            }
            body = words;
        } else if format == Format::Thread {
            body = if tags.is_empty() {
                words
            } else {
                format!("{words} {}", tags.join(" ")).trim().to_string()
            };
        } else {
            body = words;
        }
        if body.is_empty() {
            continue;
        }
        lines.push(match number {
            Some(n) => format!("{n}/ {body}"),
            None => body,
        });
    }
    let lines = renumber(
        drop_looped_and_echoed_sentences(mend_fragments(lines, format), format),
        format,
    );
    let mut out = collapse_blank_lines(&lines);
    if !hashtags.is_empty() {
        hashtags.truncate(MAX_HASHTAGS);
        out.push_str("\n\n");
        out.push_str(&hashtags.join(" "));
    }
    out
}

/// The line without its hashtags, and the hashtags (run-together ones split): a hashtag line,
/// or a trailing run of hashtags after a sentence.
fn split_hashtags(line: &str) -> (String, Vec<String>) {
    let tokens: Vec<&str> = line.split_whitespace().collect();
    let keep = if is_hashtag_line(line) {
        0
    } else {
        tokens.len()
            - tokens
                .iter()
                .rev()
                .take_while(|t| t.starts_with('#'))
                .count()
    };
    let tags: Vec<String> = tokens[keep..]
        .iter()
        .flat_map(|t| t.split('#'))
        .map(|t| t.trim_matches(|c: char| !c.is_alphanumeric() && c != '_'))
        .filter(|t| !t.is_empty())
        .map(|t| format!("#{t}"))
        .collect();
    (tokens[..keep].join(" "), tags)
}

/// The line's content for sentence checks: no post number, list marker or trailing hashtags.
fn sentence_part(line: &str) -> String {
    let body = post_number(line).map_or(line, |(_, rest)| rest);
    split_hashtags(strip_list_marker(body)).0
}

fn is_complete(line: &str) -> bool {
    is_full_sentence(&sentence_part(line))
}

/// Join, cut or drop lines that are not sentences.
fn mend_fragments(lines: Vec<String>, format: Format) -> Vec<String> {
    let content = lines.iter().filter(|l| !l.is_empty()).count();
    let mut out: Vec<String> = Vec::new();
    let mut seen = 0;
    let mut pending: Option<String> = None;
    for line in lines {
        if line.is_empty() {
            if pending.is_none() {
                out.push(line);
            }
            continue;
        }
        seen += 1;
        let line = match pending.take() {
            // The previous line was cut off and this one continues it.
            Some(head) if line.starts_with(char::is_lowercase) => format!("{head} {line}"),
            Some(head) => {
                if let Some(cut) = cut_to_sentence(&head) {
                    out.push(cut);
                }
                line
            }
            None => line,
        };
        let keeps_shape = (allows_headings(format) && is_heading(&line))
            || (content - seen < 2 && is_sign_off(&sentence_part(&line)))
            || (is_list_item(&line) && {
                let s = sentence_part(&line);
                s.unicode_words().count() >= 2
                    && !last_word(&s).is_some_and(|w| DANGLING.contains(&w.as_str()))
            });
        if keeps_shape || is_complete(&line) {
            out.push(line);
        } else {
            pending = Some(line);
        }
    }
    if let Some(head) = pending {
        if let Some(cut) = cut_to_sentence(&head) {
            out.push(cut);
        }
    }
    out
}

/// A thread post's number and its text ("3/ text" → (3, "text")); other formats' lines whole.
fn thread_number(line: &str, format: Format) -> (Option<usize>, &str) {
    match post_number(line).filter(|_| format == Format::Thread) {
        Some((n, rest)) => (Some(n), rest),
        None => (None, line),
    }
}

/// Drop each sentence that would make a loop after the sentences kept before it (see
/// [`would_loop`]) or that copies the prompt's instructions; a line left without sentences
/// goes. Headings and hashtag lines are not sentences. Loops survive the line-level repeat
/// filter when a small model says a sentence again inside a new one ("the code I have written
/// for myself" in two paragraphs of an article), and a reader sees them at once.
fn drop_looped_and_echoed_sentences(lines: Vec<String>, format: Format) -> Vec<String> {
    let mut kept: Vec<Vec<String>> = Vec::new();
    let mut out = Vec::new();
    for line in lines {
        if line.is_empty() || is_heading(&line) || is_hashtag_line(&line) {
            out.push(line);
            continue;
        }
        let (number, body) = thread_number(&line, format);
        let mut text = String::new();
        for sentence in body.split_sentence_bounds() {
            let words = folded_words(sentence);
            if would_loop(&kept, &words) || echoed_instruction(&words).is_some() {
                continue;
            }
            text.push_str(sentence);
            kept.push(words);
        }
        let text = text.trim();
        if text == body.trim() {
            out.push(line);
        } else if !sentence_part(text).is_empty() {
            out.push(match number {
                Some(n) => format!("{n}/ {text}"),
                None => text.to_string(),
            });
        }
    }
    out
}

/// Numbers that count again from 1 without gaps: a thread's posts once a fragment post was
/// dropped ("1/", "3/"), and a numbered list that starts mid-way because the model carried an
/// outline's numbering into the text ("4. …", "5. …"). A list is a run of numbered lines with
/// only blank lines between them.
fn renumber(lines: Vec<String>, format: Format) -> Vec<String> {
    let mut next = 1;
    lines
        .into_iter()
        .map(|line| {
            if format == Format::Thread {
                return match post_number(&line) {
                    Some((_, rest)) => {
                        let line = format!("{next}/ {rest}");
                        next += 1;
                        line
                    }
                    None => line,
                };
            }
            if line.is_empty() {
                return line;
            }
            match list_number(&line) {
                Some(rest) => {
                    let line = format!("{next}. {rest}");
                    next += 1;
                    line
                }
                None => {
                    next = 1;
                    line
                }
            }
        })
        .collect()
}

/// The text after a numbered list marker ("3. "), if `line` is a numbered list item.
fn list_number(line: &str) -> Option<&str> {
    let digits = line.chars().take_while(char::is_ascii_digit).count();
    (is_list_item(line) && digits > 0).then(|| line[digits..].trim_start_matches(". "))
}

/// `line` up to the end of its last complete sentence, if it has one.
fn cut_to_sentence(line: &str) -> Option<String> {
    let mut end = 0;
    for (start, sentence) in line.split_sentence_bound_indices() {
        let candidate = &line[..start + sentence.len()];
        if is_complete(candidate.trim_end()) {
            end = start + sentence.len();
        }
    }
    let cut = line[..end].trim();
    (!sentence_part(cut).is_empty() && end > 0).then(|| cut.to_string())
}

/// Lines joined with single blank lines between paragraphs, none at the ends.
fn collapse_blank_lines(lines: &[String]) -> String {
    let mut out = String::new();
    let mut blank = false;
    for line in lines {
        if line.is_empty() {
            blank = !out.is_empty();
            continue;
        }
        if !out.is_empty() {
            out.push_str(if blank { "\n\n" } else { "\n" });
        }
        out.push_str(line);
        blank = false;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::health;
    use super::*;

    #[test]
    fn the_quoted_draft_loses_its_fragments_and_markup() {
        let bad = "Dirty code is not what makes a business successful [1]

Dirty code can be just as important for customers as quality of products. This is where [1]

This is where [2]

This is where #finance#ethics## 3. Pricing a small software product can be very high [1][2]";
        let t = tidy(bad, Format::Linkedin);
        assert!(!t.contains('['), "{t}");
        assert!(!t.contains("This is where"), "{t}");
        assert!(
            t.contains("Dirty code can be just as important for customers as quality of products."),
            "{t}"
        );
        assert!(health::fragments(&t, Format::Linkedin).passed, "{t}");
        assert!(health::leftovers(&t, Format::Linkedin).passed, "{t}");
        // A one-word label in the notes' manner goes like a citation; a link's text stays.
        assert_eq!(
            tidy("[workaround] A jig holds the work.", Format::Newsletter),
            "A jig holds the work."
        );
        let link = "Read [the guide](https://example.com) first.";
        assert_eq!(tidy(link, Format::Article), link);
    }

    #[test]
    fn cut_lines_join_their_continuation() {
        let t = tidy(
            "Pricing is hard because\nyou forget the support work.",
            Format::Newsletter,
        );
        assert_eq!(t, "Pricing is hard because you forget the support work.");
    }

    #[test]
    fn hashtags_are_split_and_gathered_at_the_end() {
        let t = tidy(
            "Price the whole shop. #pricing\n\n#pricing#saas##\n\nNobody left.",
            Format::Linkedin,
        );
        assert_eq!(t, "Price the whole shop.\n\nNobody left.\n\n#pricing #saas");
    }

    #[test]
    fn posts_drop_markdown_but_articles_keep_headings() {
        let t = tidy(
            "## Why it matters\n\nIt is **really** simple.\n\n---",
            Format::Linkedin,
        );
        assert_eq!(t, "It is really simple.");
        let a = tidy("# Title\n\n## Why\n\nBecause.", Format::Article);
        assert_eq!(a, "# Title\n\n## Why\n\nBecause.");
    }

    #[test]
    fn lists_count_from_one() {
        let t = tidy(
            "Price the whole shop.\n\n4. Charge for support.\n\n5. Raise prices yearly.\n\nNobody left.\n\n2. A second list.\n3. Goes on.",
            Format::Linkedin,
        );
        assert_eq!(
            t,
            "Price the whole shop.\n\n1. Charge for support.\n\n2. Raise prices yearly.\n\nNobody left.\n\n1. A second list.\n2. Goes on."
        );
        let ok = "Intro line here.\n\n1. One thing.\n2. Two things.";
        assert_eq!(tidy(ok, Format::Article), ok);
    }

    #[test]
    fn threads_keep_numbers_and_sign_offs_survive() {
        let t = tidy(
            "1/ First post.\n2/ Second post [3]\n3/ Third post.",
            Format::Thread,
        );
        assert_eq!(t, "1/ First post.\n2/ Third post.");
        let n = tidy(
            "Hello readers.\n\nThat is all.\n\nSee you next week,\nNell",
            Format::Newsletter,
        );
        assert!(n.ends_with("See you next week,\nNell"), "{n}");
        let list = tidy(
            "Three habits:\n- sharpen your tools\n- measure twice",
            Format::Linkedin,
        );
        assert_eq!(list, "Three habits:\n- sharpen your tools\n- measure twice");
    }

    #[test]
    fn a_sentence_that_loops_goes_and_the_text_then_passes_the_loop_check() {
        use super::super::health::looping;
        // From a measured article (2026-12-04): the phrase came back in a later paragraph.
        let article = "## Before you leave

I read the code I have written for myself before I hand it over. Notes help.

## The handover

Start with the tests. Then I walk through the code I have written for myself with them. Ask what is missing.";
        assert!(!looping(article, Format::Article).passed);
        let t = tidy(article, Format::Article);
        assert_eq!(
            t,
            "## Before you leave

I read the code I have written for myself before I hand it over. Notes help.

## The handover

Start with the tests. Ask what is missing."
        );
        assert!(looping(&t, Format::Article).passed, "{t}");
        // A thread post made only of a repeat goes, and the posts are numbered again.
        let thread = "1/ Price the whole shop, not just the cut.

2/ Price the whole shop, not only the cut.

3/ Nobody left when we raised prices.";
        assert_eq!(
            tidy(thread, Format::Thread),
            "1/ Price the whole shop, not just the cut.

2/ Nobody left when we raised prices."
        );
        // A sentence that copies the prompt's instructions goes too.
        assert_eq!(
            tidy(
                "Start with the tests. No numbered list, no heading — just the section text that shows it. Ask.",
                Format::Article
            ),
            "Start with the tests. Ask."
        );
        // Short sentences may come back; different sentences stay.
        let fine = "Nobody left. We raised prices again. Nobody left.";
        assert_eq!(tidy(fine, Format::Linkedin), fine);
    }
}
