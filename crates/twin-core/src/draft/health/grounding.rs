//! Checks against what the user wrote: staying on the topic, and specifics (names, numbers)
//! the user never wrote about.

use super::*;

/// The draft is nearer its topic than any unrelated topic, by [`ON_TOPIC_MARGIN`].
pub fn on_topic(s: TopicSimilarity) -> Check {
    let margin = s.topic - s.unrelated;
    hard(
        "on_topic",
        margin >= ON_TOPIC_MARGIN,
        f64::from(margin),
        format!(
            "similarity to the topic {:.2}, to the nearest unrelated topic {:.2}",
            s.topic, s.unrelated
        ),
    )
}

/// Capitalised words that are not names wherever they stand.
pub(super) const NOT_NAMES: &[&str] = &[
    "i",
    "i'm",
    "i've",
    "i'd",
    "i'll",
    "ok",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
    "linkedin",
    "x",
    "twitter",
    "substack",
    "medium",
    "ps",
    "p.s",
];

/// Acronyms of common nouns ("an API", "the CEO"): capitalised, but no more a specific than
/// the words they stand for. Names spelled in capitals (NASA) are still names.
pub(super) const COMMON_ACRONYMS: &[&str] = &[
    "api", "apis", "ai", "ceo", "cto", "cfo", "coo", "ui", "ux", "saas", "pr", "prs", "qa", "ci",
    "sql", "http", "https", "url", "urls", "faq", "roi", "mvp", "b2b", "b2c", "kpi", "kpis", "hr",
    "pdf", "csv", "cli", "ide", "os", "cpu", "gpu", "ram", "seo", "crm", "erp", "tv", "usb", "diy",
    "eta", "tl;dr", "tldr", "vs",
];

/// Words that make a spelled-out number an amount someone could check ("ten thousand cabinet
/// orders"); "a hundred" is a figure of speech only for an author who writes it.
const MAGNITUDES: [&str; 5] = ["hundred", "thousand", "million", "billion", "trillion"];

/// Spelled-out amounts in `sentence`: a magnitude with the word before it ("ten thousand"),
/// which digits-only matching misses (`twin bench quality`, 2026-12-04: "the first ten
/// thousand cabinet orders were all six-figure").
fn spelled_out_amounts(sentence: &str) -> Vec<String> {
    let words: Vec<String> = sentence.unicode_words().map(|w| w.to_lowercase()).collect();
    words
        .iter()
        .enumerate()
        .filter(|(_, w)| MAGNITUDES.contains(&w.as_str()))
        .map(|(i, w)| match i.checked_sub(1).map(|p| &words[p]) {
            Some(before) => format!("{before} {w}"),
            None => w.clone(),
        })
        .collect()
}

/// Names and numbers a draft asserts: runs of capitalised words that do not open a sentence
/// (headings and hashtags aside), numbers of two or more digits, and amounts spelled out with
/// a magnitude ("ten thousand").
pub fn specifics(text: &str) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || is_heading(line) {
            continue;
        }
        // A thread's "3/" and a list's "10." number the text; they assert nothing.
        let line = post_number(line).map_or(line, |(_, rest)| rest);
        let line = strip_list_marker(line);
        for sentence in line.unicode_sentences() {
            found.extend(spelled_out_amounts(sentence));
            let mut name: Vec<&str> = Vec::new();
            let mut first = true;
            for (_, word) in sentence.split_word_bound_indices() {
                if !word.chars().any(char::is_alphanumeric) {
                    // Punctuation ends a name; spaces join its words.
                    if !word.trim().is_empty() && !name.is_empty() {
                        found.push(name.join(" "));
                        name.clear();
                    }
                    // A quotation or what follows a colon opens with a capital like a
                    // sentence: `a rule I learned: "Workers can never say no."`.
                    if word.chars().any(|c| matches!(c, '"' | '“' | '‘' | ':')) {
                        first = true;
                    }
                    continue;
                }
                let opening = std::mem::replace(&mut first, false);
                if word
                    .chars()
                    .all(|c| c.is_ascii_digit() || c == '.' || c == ',')
                {
                    if word.chars().filter(char::is_ascii_digit).count() >= 2 {
                        found.push(word.trim_end_matches(['.', ',']).to_string());
                    }
                    continue;
                }
                let capitalised = word.starts_with(char::is_uppercase);
                let folded = word.to_lowercase().replace('’', "'");
                if capitalised
                    && !opening
                    && !NOT_NAMES.contains(&folded.as_str())
                    && !COMMON_ACRONYMS.contains(&folded.as_str())
                {
                    name.push(word);
                } else if !name.is_empty() {
                    found.push(name.join(" "));
                    name.clear();
                }
            }
            if !name.is_empty() {
                found.push(name.join(" "));
            }
        }
    }
    // Hashtags are split off by the word bounds too: drop names that are a hashtag's word.
    let hashtags: HashSet<String> = text
        .split_whitespace()
        .filter_map(|w| w.strip_prefix('#'))
        .map(str::to_lowercase)
        .collect();
    found.retain(|f| !hashtags.contains(&f.to_lowercase()));
    let mut seen = HashSet::new();
    found.retain(|f| seen.insert(f.clone()));
    found
}

/// Specifics the draft asserts that appear nowhere in the user's writing or the request.
pub fn invented(text: &str, topic: &str, known: &dyn Fn(&str) -> bool) -> Check {
    let topic_words: HashSet<String> = folded_words(topic).into_iter().collect();
    let unknown: Vec<String> = specifics(text)
        .into_iter()
        .filter(|s| {
            folded_words(s)
                .iter()
                .any(|w| !topic_words.contains(w) && !known(w))
        })
        .collect();
    found_check(
        "invented",
        &unknown,
        "every name and number is in your writing or the request",
        &format!("not in your writing: {}", unknown.join(", ")),
    )
}
