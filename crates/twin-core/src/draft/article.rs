//! Long formats written in parts. An article: a grammar-constrained plan (a title and section
//! headings), then each section; a newsletter: the outline's points, one part each, the first
//! with the greeting and the last with the sign-off. Each part is checked and, when it fails
//! its checks, written again.
//!
//! A 300- or 600-word text from a small model almost always has one bad stretch, so a long
//! text is never retried whole: each part is checked with the text before it (a part that
//! repeats an earlier one is a loop) and only the failing part is written again. The plan
//! is cleaned first: a small model labels its headings ("Title 1: …", "SECTION 2: …"), cuts
//! them off mid-phrase ("… team with a"), or repeats the title as a heading, and a plan like
//! that makes the sections quote each other.

use super::*;

/// Sections an article has.
const SECTIONS: usize = 3;

/// Labels a small model puts before a heading, followed by an optional number and a colon.
const HEADING_LABELS: &[&str] = &[
    "title",
    "section",
    "part",
    "description",
    "summary",
    "heading",
    "chapter",
    "step",
    "point",
    "keywords",
    "topic",
];

/// Words no heading ends on.
const HEADING_DANGLING: &[&str] = &[
    "the", "a", "an", "and", "or", "but", "your", "my", "our", "their",
];

/// Words a heading that was cut off (at the grammar's length, or before a stray comma) ends on;
/// a whole heading may ("What the buyer pays for").
const CUT_OFF_AFTER: &[&str] = &[
    "with", "of", "to", "for", "in", "on", "at", "by", "from", "as", "that",
];

/// A plan's string this long was cut off by the grammar (60 characters at most).
const CUT_OFF_LENGTH: usize = 55;

/// `text` as a heading: no label ("SECTION 1:"), no list number, no trailing punctuation
/// or words it was cut off after.
pub(super) fn clean_heading(text: &str) -> String {
    let cut_off = text.chars().count() >= CUT_OFF_LENGTH
        || text.ends_with(char::is_whitespace)
        || text.trim_end().ends_with(',');
    let untagged = without_tags(text);
    let mut t = untagged.trim();
    // "SECTION 1: …", "Section 2 - …", "Part 3. …": a label, a number or none, a separator.
    if let Some(at) = t.find([':', '-', '–', '—', '.']) {
        let (label, rest) = (&t[..at], &t[at..]);
        let mut words = label.split_whitespace();
        let is_label = words
            .next()
            .is_some_and(|w| HEADING_LABELS.contains(&w.to_lowercase().as_str()))
            && words.all(|w| w.chars().all(|c| c.is_ascii_digit() || c == '.'));
        if is_label {
            t = rest.trim_start_matches([':', '-', '–', '—', '.', ' ']);
        }
    }
    let t = strip_numbering(t);
    let mut words: Vec<&str> = t.split_whitespace().collect();
    while let Some(last) = words.last() {
        let bare = last
            .trim_end_matches(|c: char| !c.is_alphanumeric())
            .to_lowercase();
        let dangles = bare.is_empty()
            || HEADING_DANGLING.contains(&bare.as_str())
            || (cut_off && CUT_OFF_AFTER.contains(&bare.as_str()));
        if !dangles {
            break;
        }
        words.pop();
    }
    words
        .join(" ")
        .trim_end_matches(|c: char| !c.is_alphanumeric() && !matches!(c, '?' | '!' | ')' | '"'))
        .to_string()
}

/// `text` without markup tags (`<Title>`, `</SECTION1`): the model's headings sometimes wear
/// them. A `<` not followed by a letter or `/` is text ("a < b").
fn without_tags(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        let opens_tag = c == '<'
            && chars
                .peek()
                .is_some_and(|n| n.is_ascii_alphabetic() || *n == '/');
        if opens_tag {
            // Skip to the tag's end, or to the end of the text when it was cut off.
            for t in chars.by_ref() {
                if t == '>' {
                    break;
                }
            }
            out.push(' ');
        } else {
            out.push(c);
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `plan` with its title and headings cleaned, or why it cannot be used: an empty heading, or
/// one that repeats the title or another heading.
pub(super) fn clean_plan(plan: ArticlePlan) -> Result<ArticlePlan, String> {
    let title = clean_heading(&plan.title);
    if title.is_empty() {
        return Err("no title".into());
    }
    let fold = |s: &str| s.to_lowercase();
    let title_words = content_words(&title);
    let mut seen = vec![fold(&title)];
    let mut sections = Vec::new();
    let mut dropped = Vec::new();
    for heading in plan.sections.iter().map(|h| clean_heading(h)) {
        let words = content_words(&heading);
        let unusable = heading.split_whitespace().count() < 2
            || health::is_placeholder_heading(&heading)
            || seen.contains(&fold(&heading))
            || (!words.is_empty() && words.is_subset(&title_words));
        if unusable {
            dropped.push(heading);
        } else {
            seen.push(fold(&heading));
            sections.push(heading);
        }
    }
    // Two good sections make an article; a third that only says the title again, or a slot
    // the model left unfilled ("Premise 1"), is left out rather than the plan made again.
    if sections.len() < 2 {
        return Err(format!(
            "headings {dropped:?} are too short, placeholders or repeat the title or each other"
        ));
    }
    Ok(ArticlePlan { title, sections })
}

/// A heading's content words, each cut to its first four letters so that "pricing" and
/// "price" count as one: a heading made only of the title's words adds nothing to it.
fn content_words(text: &str) -> std::collections::HashSet<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.chars().count() > 3)
        .map(|w| w.to_lowercase().chars().take(4).collect())
        .collect()
}

/// The plan: greedy first, then sampled with other seeds while the plan cannot be used; the
/// last plan is kept, cleaned as far as it goes, if none can.
pub(super) fn article_plan(run: &mut Run<'_>) -> Result<ArticlePlan, DraftError> {
    let mut last = None;
    for attempt in 0..=RETRIES {
        let sampling = (attempt > 0).then(|| Sampling {
            seed: run.request.sampling.seed.wrapping_add(attempt),
            ..run.request.sampling.clone()
        });
        let plan: ArticlePlan = run.structured(
            "outline",
            "article_outline",
            minijinja::context! { sections => SECTIONS },
            grammar::outline_grammar(SECTIONS),
            grammar::max_tokens_for(SECTIONS + 1),
            sampling,
        )?;
        match clean_plan(plan.clone()) {
            Ok(clean) => return Ok(clean),
            Err(why) => {
                tracing::debug!(attempt, %why, "article plan not usable");
                last = Some(plan);
            }
        }
    }
    let plan = last.unwrap_or(ArticlePlan {
        title: run.request.topic.clone(),
        sections: Vec::new(),
    });
    Ok(ArticlePlan {
        title: clean_heading(&plan.title),
        sections: plan.sections.iter().map(|h| clean_heading(h)).collect(),
    })
}

/// The values and limits of the step that writes `heading`'s section of `plan`.
pub(super) fn section_step(
    run: &Run<'_>,
    plan: &ArticlePlan,
    heading: &str,
) -> (minijinja::Value, GenerateRequest) {
    let length = run.request.format.length();
    let parts = plan.sections.len().max(1);
    (
        minijinja::context! {
            title => plan.title,
            heading => heading,
            words => length.target_words / parts,
        },
        run.writing_request((length.min_words / parts, length.max_words / parts)),
    )
}

/// The article: the plan (`plan` when [`prepare`] made it), then each section in turn (see
/// [`write_parts`]).
pub(super) fn write_article(
    run: &mut Run<'_>,
    system: &str,
    plan: Option<ArticlePlan>,
    check_part: &dyn Fn(&str) -> (String, health::Health),
) -> Result<String, DraftError> {
    let plan = match plan {
        Some(p) => p,
        None => article_plan(run)?,
    };
    let parts: Vec<Part> = plan
        .sections
        .iter()
        .map(|heading| {
            let (extra, limits) = section_step(run, &plan, heading);
            Part {
                opening: format!("\n## {}\n\n", heading.trim()),
                extra,
                limits,
            }
        })
        .collect();
    let head = format!("# {}\n", plan.title.trim());
    write_parts(run, system, "section", head, parts, check_part)
}

/// `line` without a leading list number ("1. ", "3) "); a number that is part of the text
/// ("10 lessons from the bench") stays.
fn strip_numbering(line: &str) -> &str {
    // An outline letter first ("A.1. ", "B. "), as the model sometimes numbers its plan.
    let line = match line.as_bytes() {
        [l, b'.', ..] if l.is_ascii_uppercase() => {
            let after = line[2..].trim_start_matches(|c: char| c.is_ascii_digit());
            let after = after.strip_prefix(['.', ')']).unwrap_or(after);
            if after.starts_with(' ') {
                after.trim_start()
            } else {
                line
            }
        }
        _ => line,
    };
    let rest = line.trim_start_matches(|c: char| c.is_ascii_digit());
    if rest.len() == line.len() {
        return line;
    }
    match rest.strip_prefix(['.', ')']) {
        Some(after) => after.trim_start(),
        None => line,
    }
}

/// The points of a plan the outline step wrote ("1. …", "- …"), at most `n`.
pub(super) fn plan_points(outline: &str, n: usize) -> Vec<String> {
    outline
        .lines()
        .map(|l| {
            strip_numbering(l.trim())
                .trim_start_matches(['-', '*', '•'])
                .trim()
        })
        .filter(|l| l.split_whitespace().count() >= 3)
        .take(n)
        .map(str::to_string)
        .collect()
}

/// A newsletter following the outline's `points`: a greeting and the first point, then each
/// point in turn, the last with the sign-off (see [`write_parts`]).
pub(super) fn write_newsletter(
    run: &mut Run<'_>,
    system: &str,
    points: &[String],
    check_part: &dyn Fn(&str) -> (String, health::Health),
) -> Result<String, DraftError> {
    let length = run.request.format.length();
    let n = points.len().max(1);
    let parts: Vec<Part> = points
        .iter()
        .enumerate()
        .map(|(i, point)| Part {
            opening: if i == 0 { String::new() } else { "\n\n".into() },
            extra: minijinja::context! {
                point => point,
                first => i == 0,
                last => i + 1 == n,
                words => length.target_words / n,
            },
            limits: run.writing_request((length.min_words / n, length.max_words / n)),
        })
        .collect();
    write_parts(
        run,
        system,
        "newsletter_part",
        String::new(),
        parts,
        check_part,
    )
}

/// One part of a text written in parts: what goes before the model's text (a heading), and
/// the step's values and limits.
pub(super) struct Part {
    opening: String,
    extra: minijinja::Value,
    limits: GenerateRequest,
}

/// `head`, then each part written with `template` (streamed as the "section" step), checked
/// with the text before it (`check_part`, so a part that repeats an earlier one counts as a
/// loop) and written again with another seed when it fails, [`RETRIES`] times at most; the
/// best try of each part is kept. A long text from a small model almost always has one bad
/// stretch; retrying the whole would throw the good parts away.
fn write_parts(
    run: &mut Run<'_>,
    system: &str,
    template: &str,
    head: String,
    parts: Vec<Part>,
    check_part: &dyn Fn(&str) -> (String, health::Health),
) -> Result<String, DraftError> {
    let mut text = head;
    let mut retries = 0;
    for part in parts {
        let mut best: Option<(String, String, health::Health)> = None;
        for attempt in 0..=RETRIES {
            let mut limits = part.limits.clone();
            limits.sampling.seed = limits.sampling.seed.wrapping_add(attempt);
            let body = run.generate("section", system, template, part.extra.clone(), limits)?;
            let written = format!("{}{}\n", part.opening, body.trim());
            let (shaped, health) = check_part(&format!("{text}{written}"));
            retries += u32::from(attempt > 0);
            let publishable = health.publishable;
            if best.as_ref().is_none_or(|(_, _, b)| health.beats(b)) {
                best = Some((written, shaped, health));
            }
            if publishable {
                break;
            }
        }
        if let Some((written, shaped, _)) = best {
            text.push_str(&written);
            (run.on_event)(DraftEvent::Preview { text: shaped });
        }
    }
    run.detail.retries += retries;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headings_lose_labels_numbers_and_the_words_they_were_cut_off_after() {
        for (raw, clean) in [
            (
                "SECTION 1: Pricing a Small Software Product, the Basics",
                "Pricing a Small Software Product, the Basics",
            ),
            (
                "Description 1: How to handle a new maintainance team with a ",
                "How to handle a new maintainance team",
            ),
            ("Summary 2: How to handle it with a ,", "How to handle it"),
            (
                "1. How to price a small software product.",
                "How to price a small software product",
            ),
            (
                "The Key to Pricing a Small Software Product, the",
                "The Key to Pricing a Small Software Product",
            ),
            (
                "Introduction: why small wins",
                "Introduction: why small wins",
            ),
            ("Why say no?", "Why say no?"),
            // Seen in `twin bench quality` (2026-12-03).
            ("<Title>Premise 1</Title", "Premise 1"),
            (
                "<Section1Title1>How to Create a Small Business</SECTION1",
                "How to Create a Small Business",
            ),
            ("When a < b", "When a < b"),
            ("10 Lessons from the bench", "10 Lessons from the bench"),
            (
                "Section 2 - What to Consider When Handling a Codebase",
                "What to Consider When Handling a Codebase",
            ),
            ("Part 3. Round up", "Round up"),
            ("A.1. How to Price", "How to Price"),
            ("C.3. Conclusion", "Conclusion"),
            ("B. Ship small", "Ship small"),
            (
                "Keywords: 1. Provide a Detailed Guide",
                "Provide a Detailed Guide",
            ),
            ("Self-made jigs", "Self-made jigs"),
            ("2. 10 Lessons from the bench", "10 Lessons from the bench"),
        ] {
            assert_eq!(clean_heading(raw), clean, "{raw:?}");
        }
    }

    #[test]
    fn a_plan_whose_headings_repeat_the_title_or_each_other_is_not_used() {
        let plan = |title: &str, sections: &[&str]| ArticlePlan {
            title: title.into(),
            sections: sections.iter().map(|s| s.to_string()).collect(),
        };
        // The plan a small model wrote for "handing over a codebase" (2026-12-03).
        let seen = plan(
            "Handling a Codebase to a New Maintainer",
            &[
                "Title 1: Handling a Codebase to a New Maintainer",
                "Description 1: How to handle a new maintainance team with a ",
                "Summary 2: How to handle a new maintainance team with a ,",
            ],
        );
        assert!(clean_plan(seen).is_err());
        let good = clean_plan(plan(
            "Price it like furniture.",
            &[
                "1. What the buyer pays for",
                "Section 2: Hours after the sale",
                "Round up",
            ],
        ))
        .unwrap();
        assert_eq!(good.title, "Price it like furniture");
        assert_eq!(
            good.sections,
            [
                "What the buyer pays for",
                "Hours after the sale",
                "Round up"
            ]
        );
        assert!(clean_plan(plan("T", &["Ship", "Two words"])).is_err());
        // Seen in `twin bench quality` (2026-12-03, evening): placeholders, and a heading
        // that only says the title again.
        for bad in [
            "Premise 1",
            "Description of the article's structure and content",
            "How to Price a Small Software Product",
        ] {
            let p = clean_plan(plan(
                "Pricing a Small Software Product",
                &["Price the whole shop", bad, "Raise prices once a year"],
            ))
            .unwrap();
            assert_eq!(
                p.sections,
                ["Price the whole shop", "Raise prices once a year"],
                "{bad:?}"
            );
            assert!(clean_plan(plan(
                "Pricing a Small Software Product",
                &["Price the whole shop", bad, bad],
            ))
            .is_err());
        }
        assert_eq!(
            clean_plan(plan(
                "Pricing a Small Software Product",
                &[
                    "Pricing a Small Software Product, the Basics",
                    "Price the whole shop",
                    "Raise prices once a year",
                ],
            ))
            .unwrap()
            .sections
            .len(),
            3
        );
    }

    #[test]
    fn an_outline_s_points_lose_their_bullets_and_short_lines_are_not_points() {
        let outline = "1. Calculate every joint before you build it\n\n- Price the whole shop, not the cut\n* Ship\n3) Round up when in doubt\n4. One too many points here";
        assert_eq!(
            plan_points(outline, 3),
            [
                "Calculate every joint before you build it",
                "Price the whole shop, not the cut",
                "Round up when in doubt"
            ]
        );
    }
}
