//! Checks on the text itself: fragments, loops, and text pasted from a source.

use super::*;

/// The draft's lines with a thread's post numbers removed, blank lines dropped.
pub(super) fn content_lines(text: &str, format: Format) -> Vec<&str> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| {
            if format == Format::Thread {
                post_number(l).map_or(l, |(_, rest)| rest)
            } else {
                l
            }
        })
        .collect()
}

/// "3/ text" → (3, "text").
pub(in crate::draft) fn post_number(line: &str) -> Option<(usize, &str)> {
    let digits = line.chars().take_while(char::is_ascii_digit).count();
    if digits == 0 || digits > 2 {
        return None;
    }
    let n = line[..digits].parse().ok()?;
    let rest = line[digits..].strip_prefix('/')?;
    Some((n, rest.trim_start()))
}

pub(in crate::draft) fn is_hashtag_line(line: &str) -> bool {
    line.split_whitespace()
        .all(|w| w.starts_with('#') && w.len() > 1)
}

/// "#finance#ethics", "#ethics##": hashtags a model ran together (a heading's "##" is not).
pub(in crate::draft) fn is_run_together_hashtag(token: &str) -> bool {
    token.starts_with('#')
        && token
            .trim_start_matches('#')
            .split_once('#')
            .is_some_and(|(head, _)| head.chars().any(char::is_alphanumeric))
}

/// The text of a list item without its marker.
pub(in crate::draft) fn strip_list_marker(line: &str) -> &str {
    if !is_list_item(line) {
        return line.trim();
    }
    line.trim_start_matches(['-', '*', '•', '→'])
        .trim_start_matches(|c: char| c.is_ascii_digit())
        .trim_start_matches(['.', ' '])
        .trim()
}

/// "- item", "* item", "• item", "→ item", "3. item".
pub(in crate::draft) fn is_list_item(line: &str) -> bool {
    if let Some(rest) = line.strip_prefix(['-', '*', '•', '→']) {
        return rest.starts_with(' ');
    }
    let digits = line.chars().take_while(char::is_ascii_digit).count();
    (1..=2).contains(&digits) && line[digits..].starts_with(". ")
}

/// Words that say what a heading is rather than what its section says: "Premise 1",
/// "Description of the article's structure and content", "Section 2".
const PLACEHOLDER_WORDS: &[&str] = &[
    "article",
    "article's",
    "section",
    "premise",
    "structure",
    "outline",
    "subheading",
    "heading",
    "placeholder",
];

/// Whether `heading` names a slot of the plan instead of filling it.
pub(in crate::draft) fn is_placeholder_heading(heading: &str) -> bool {
    let words: Vec<String> = heading
        .split_whitespace()
        .map(|w| {
            w.trim_matches(|c: char| !c.is_alphanumeric() && c != '\'')
                .to_lowercase()
        })
        .collect();
    let numbered_label = words.len() <= 3
        && words
            .last()
            .is_some_and(|w| !w.is_empty() && w.chars().all(|c| c.is_ascii_digit()));
    numbered_label
        || words
            .iter()
            .any(|w| PLACEHOLDER_WORDS.contains(&w.as_str()))
}

/// Formats whose platforms render Markdown headings (blogs, newsletters).
pub(in crate::draft) fn allows_headings(format: Format) -> bool {
    format.is_long()
}

pub(in crate::draft) fn is_heading(line: &str) -> bool {
    line.starts_with('#') && !is_hashtag_line(line)
}

/// The length of the bracketed marker `after` an opening `[` starts with, up to and including
/// its `]`: a citation copied from the prompt's notes (`3]`) or a one-word label in the notes'
/// manner (`workaround]`, a newsletter, 2026-12-04). A Markdown link's text (`[here](…)`) is
/// not a marker.
fn marker_len(after: &str) -> Option<usize> {
    let inner = after
        .chars()
        .take_while(|c| c.is_alphanumeric() || matches!(c, '-' | '_'))
        .map(char::len_utf8)
        .sum::<usize>();
    let rest = after[inner..].strip_prefix(']')?;
    let label = &after[..inner];
    let citation = label.chars().all(|c| c.is_ascii_digit());
    (inner > 0 && (citation || (label.chars().count() <= 20 && !rest.starts_with('('))))
        .then_some(inner + 1)
}

/// `[3]`, `[1][2]`, `[workaround]`: citation markers and labels copied from the prompt's notes.
pub(in crate::draft) fn citation_markers(line: &str) -> usize {
    let mut n = 0;
    let mut rest = line;
    while let Some(i) = rest.find('[') {
        let after = &rest[i + 1..];
        n += usize::from(marker_len(after).is_some());
        rest = after;
    }
    n
}

pub(in crate::draft) fn without_citations(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(i) = rest.find('[') {
        let after = &rest[i + 1..];
        out.push_str(&rest[..i]);
        match marker_len(after) {
            Some(len) => rest = &after[len..],
            None => {
                out.push('[');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Words a sentence cannot end on (prepositions can: "what the board is for."; "where" rarely
/// does, and "This is where" is how a small model's loop breaks off).
pub(in crate::draft) const DANGLING: &[&str] = &[
    "the", "a", "an", "and", "or", "but", "because", "my", "your", "our", "their", "where",
];

pub(in crate::draft) fn ends_as_sentence(line: &str) -> bool {
    let trimmed = line.trim_end_matches(['"', '\'', '”', '’', ')', '*', '_']);
    trimmed
        .chars()
        .last()
        .is_some_and(|c| matches!(c, '.' | '!' | '?' | '…' | ':' | ';') || is_emoji(c))
}

pub(super) fn is_emoji(c: char) -> bool {
    matches!(c as u32, 0x1F300..=0x1FAFF | 0x2600..=0x27BF)
}

/// Whether `s` (hashtags removed) ends as a full sentence: terminal punctuation, not on a word
/// no sentence ends on ("the", "where"), and not on a list number run into it ("where 3.").
pub(in crate::draft) fn is_full_sentence(s: &str) -> bool {
    if !ends_as_sentence(s) {
        return false;
    }
    let mut words: Vec<String> = s.unicode_words().map(str::to_lowercase).collect();
    if s.trim_end().ends_with('.')
        && words
            .last()
            .is_some_and(|w| w.len() <= 2 && w.chars().all(|c| c.is_ascii_digit()))
    {
        words.pop();
    }
    !words.last().is_none_or(|w| DANGLING.contains(&w.as_str()))
}

pub(in crate::draft) fn last_word(line: &str) -> Option<String> {
    line.unicode_words().next_back().map(str::to_lowercase)
}

/// A closing line such as "— Nell", "Cheers,", "Until next week," or a bare name.
pub(in crate::draft) fn is_sign_off(line: &str) -> bool {
    let words = line.split_whitespace().count();
    words <= 6
        && (line.starts_with(['—', '–', '-', '~'])
            || line.ends_with(',')
            || (words <= 2
                && line
                    .split_whitespace()
                    .all(|w| w.starts_with(char::is_uppercase))))
}

/// Lines that are not sentences: bare citation lines, lines cut off mid-sentence ("This is
/// where"), sentences ending on a word no sentence ends on, a hashtag line before the end.
pub fn fragments(text: &str, format: Format) -> Check {
    let lines = content_lines(text, format);
    let mut bad = Vec::new();
    for (i, raw) in lines.iter().enumerate() {
        let from_end = lines.len() - i;
        if is_heading(raw) {
            continue;
        }
        if is_hashtag_line(raw) {
            if from_end > 1 {
                bad.push(quote(raw));
            }
            continue;
        }
        let line = without_citations(raw);
        let line = strip_list_marker(&line).to_string();
        if line.unicode_words().next().is_none() {
            bad.push(quote(raw));
            continue;
        }
        if from_end <= 2 && is_sign_off(&line) {
            continue;
        }
        if is_list_item(raw) && line.unicode_words().count() >= 2 {
            if last_word(&line).is_some_and(|w| DANGLING.contains(&w.as_str())) {
                bad.push(quote(raw));
            }
            continue;
        }
        // A trailing run of hashtags is fine after a sentence ("… the cut. #pricing").
        let sentence = line
            .split_whitespace()
            .rev()
            .skip_while(|w| w.starts_with('#'))
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join(" ");
        if !is_full_sentence(&sentence) {
            bad.push(quote(raw));
        }
    }
    found_check(
        "fragments",
        &bad,
        "every line is a sentence",
        &format!("{} not a sentence: {}", bad.len(), bad.join(", ")),
    )
}

pub(in crate::draft) fn folded_words(text: &str) -> Vec<String> {
    text.unicode_words()
        .map(|w| w.to_lowercase().replace('’', "'"))
        .collect()
}

/// A loop's phrase: a run of this many words (first) in this many sentences (second). A
/// rhetorical triplet within one sentence ("the test that was going to be written, the
/// migration that was going to be cleaned up, …") is style, not a loop; the sample writing
/// never does either.
const LOOPED_PHRASES: [(usize, usize); 2] = [(7, 2), (5, 3)];

/// Phrases a loop repeats (see [`LOOPED_PHRASES`]), the first of each length.
pub(super) fn repeated_phrases(sentences: &[Vec<String>]) -> Vec<String> {
    let mut found = Vec::new();
    for (n, times) in LOOPED_PHRASES {
        let mut counts: HashMap<&[String], usize> = HashMap::new();
        for sentence in sentences {
            let distinct: HashSet<&[String]> = sentence.windows(n).collect();
            for g in distinct {
                *counts.entry(g).or_default() += 1;
            }
        }
        let mut phrases: Vec<String> = counts
            .into_iter()
            .filter(|(_, k)| *k >= times)
            .map(|(g, k)| format!("\"{}\" in {k} sentences", g.join(" ")))
            .collect();
        phrases.sort();
        if let Some(p) = phrases.into_iter().next() {
            found.push(p);
        }
    }
    found
}

/// Whether a sentence with the distinct `words` says an `earlier` one again: it has 4 words or
/// more and 80% of them are in the earlier sentence, which is not much longer. Loops change a
/// word or a number ("about seventy per cent", "about fifty per cent").
fn says_again(earlier: &HashSet<String>, words: &HashSet<String>) -> bool {
    let shared = earlier.intersection(words).count();
    words.len() >= 4 && shared * 10 >= words.len() * 8 && shared * 10 >= earlier.len() * 6
}

/// Whether the sentence whose folded words are `sentence` would make a loop after the
/// `earlier` sentences: it says one of them again, or it has a phrase that would then be in
/// as many sentences as [`LOOPED_PHRASES`] allows. Dropping every such sentence leaves a text
/// without repeated sentences or phrases for [`looping`].
pub(in crate::draft) fn would_loop(earlier: &[Vec<String>], sentence: &[String]) -> bool {
    let words: HashSet<String> = sentence.iter().cloned().collect();
    if earlier
        .iter()
        .any(|e| says_again(&e.iter().cloned().collect(), &words))
    {
        return true;
    }
    LOOPED_PHRASES.iter().any(|&(n, times)| {
        sentence.windows(n).any(|g| {
            earlier
                .iter()
                .filter(|e| e.windows(n).any(|w| w == g))
                .count()
                + 1
                >= times
        })
    })
}

/// Repeated sentences, the share of word 4-grams that occur again, and three or more lines
/// that open with the same three words ("This is where…").
pub fn looping(text: &str, format: Format) -> Check {
    let lines = content_lines(text, format);
    let body: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| !is_heading(l) && !is_hashtag_line(l))
        .collect();
    let mut seen: Vec<HashSet<String>> = Vec::new();
    let mut repeated_sentences = Vec::new();
    for line in &body {
        for sentence in line.unicode_sentences() {
            let words: HashSet<String> = folded_words(sentence).into_iter().collect();
            if words.len() < 4 {
                continue;
            }
            if seen.iter().any(|earlier| says_again(earlier, &words)) {
                repeated_sentences.push(quote(sentence));
            }
            seen.push(words);
        }
    }
    let words: Vec<String> = body.iter().flat_map(|l| folded_words(l)).collect();
    let mut grams: HashMap<&[String], usize> = HashMap::new();
    for g in words.windows(4) {
        *grams.entry(g).or_default() += 1;
    }
    let total = words.len().saturating_sub(3);
    let repeats: usize = grams.values().map(|n| n - 1).sum();
    let share = if total == 0 {
        0.0
    } else {
        repeats as f64 / total as f64
    };
    let mut openings: HashMap<String, usize> = HashMap::new();
    for line in &body {
        let w = folded_words(line);
        if w.len() >= 5 {
            *openings.entry(w[..3].join(" ")).or_default() += 1;
        }
    }
    let mut looped_openings: Vec<String> = openings
        .into_iter()
        .filter(|(_, n)| *n >= 3)
        .map(|(o, n)| format!("\"{o}…\" opens {n} lines"))
        .collect();
    looped_openings.sort();
    let sentences: Vec<Vec<String>> = body
        .iter()
        .flat_map(|l| l.unicode_sentences())
        .map(folded_words)
        .collect();
    let phrases = repeated_phrases(&sentences);
    let passed = repeated_sentences.is_empty()
        && share <= MAX_REPEATED_4GRAMS
        && looped_openings.is_empty()
        && phrases.is_empty();
    let mut detail = format!("{:.0}% of 4-grams repeat", share * 100.0);
    if !repeated_sentences.is_empty() {
        detail.push_str(&format!(
            "; repeated sentences: {}",
            repeated_sentences.join(", ")
        ));
    }
    if !looped_openings.is_empty() {
        detail.push_str(&format!("; {}", looped_openings.join(", ")));
    }
    if !phrases.is_empty() {
        detail.push_str(&format!("; repeated phrases: {}", phrases.join(", ")));
    }
    hard("looping", passed, share, detail)
}

/// The longest run of words `a` and `b` share, as (length, the run).
pub fn longest_shared_run(a: &[String], b: &[String]) -> (usize, usize) {
    // Longest common substring over words; `prev[j]` is the run ending at a[i-1], b[j-1].
    let mut prev = vec![0usize; b.len() + 1];
    let mut best = (0, 0);
    for i in 1..=a.len() {
        let mut cur = vec![0usize; b.len() + 1];
        for j in 1..=b.len() {
            if a[i - 1] == b[j - 1] {
                cur[j] = prev[j - 1] + 1;
                if cur[j] > best.0 {
                    best = (cur[j], i);
                }
            }
        }
        prev = cur;
    }
    best
}

/// The longest verbatim word run the draft shares with any text the model was shown.
pub fn copying(text: &str, sources: &[String]) -> Check {
    let draft = folded_words(text);
    let mut best = (0, 0);
    for s in sources {
        let run = longest_shared_run(&draft, &folded_words(s));
        if run.0 > best.0 {
            best = run;
        }
    }
    let (len, end) = best;
    let passed = len <= MAX_SHARED_RUN;
    let detail = if passed {
        format!("longest run shared with a source: {len} words")
    } else {
        format!(
            "{len} words pasted from a source: \"{}\"",
            draft[end - len..end].join(" ")
        )
    };
    hard("copying", passed, len as f64, detail)
}
