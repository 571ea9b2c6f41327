//! The user's writing cut into training passages: boilerplate and lists left out, lengths kept in
//! bounds, and the documents held out for evaluation chosen.

use super::*;

/// The platform a document's examples are written as.
pub(super) fn format_of(platform: Option<&str>) -> Format {
    match platform.unwrap_or("") {
        "linkedin" => Format::Linkedin,
        "x" | "twitter" => Format::Thread,
        "newsletter" | "substack" => Format::Newsletter,
        _ => Format::Article,
    }
}

pub(super) const BOILERPLATE: &[&str] = &[
    "subscribe",
    "unsubscribe",
    "share this",
    "click here",
    "all rights reserved",
    "follow me",
    "sign up",
    "cookie",
    "copyright",
    "©",
];

pub(super) enum Kept {
    Yes,
    Quote,
    Code,
    Boilerplate,
    Heading,
}

/// Whether a paragraph is the user's own prose.
pub(super) fn classify(paragraph: &str) -> Kept {
    let p = paragraph.trim();
    if p.starts_with('#') {
        return Kept::Heading;
    }
    let lines: Vec<&str> = p.lines().collect();
    if lines.iter().all(|l| l.trim_start().starts_with('>')) {
        return Kept::Quote;
    }
    let quoted = |open: char, close: char| p.starts_with(open) && p.ends_with(close);
    if quoted('"', '"') || quoted('“', '”') || quoted('«', '»') {
        return Kept::Quote;
    }
    if p.starts_with("```")
        || p.starts_with("~~~")
        || lines
            .iter()
            .all(|l| l.starts_with("    ") || l.starts_with('\t'))
    {
        return Kept::Code;
    }
    let symbols = p
        .chars()
        .filter(|c| matches!(c, '{' | '}' | ';' | '=' | '<' | '>' | '(' | ')' | '[' | ']'))
        .count();
    if symbols * 12 > p.chars().count().max(1) {
        return Kept::Code;
    }
    let lower = p.to_lowercase();
    if word_count(p) < 25 && BOILERPLATE.iter().any(|b| lower.contains(b)) {
        return Kept::Boilerplate;
    }
    Kept::Yes
}

/// A passage of the user's prose and the section heading it sits under.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Passage {
    pub(super) heading: Option<String>,
    pub(super) text: String,
}

/// Split a document body into passages of whole paragraphs of at most `max_words` words.
pub(super) fn passages(
    body: &str,
    params: &DatasetParams,
    filtered: &mut FilterCounts,
) -> Vec<Passage> {
    let mut out: Vec<Passage> = Vec::new();
    let mut current: Vec<String> = Vec::new();
    let mut words = 0;
    let mut heading: Option<String> = None;
    let flush = |current: &mut Vec<String>,
                 words: &mut usize,
                 out: &mut Vec<Passage>,
                 heading: &Option<String>| {
        if !current.is_empty() {
            out.push(Passage {
                heading: heading.clone(),
                text: current.join("\n\n"),
            });
        }
        current.clear();
        *words = 0;
    };
    // Paragraphs are blank-line separated; a fenced code block may contain blank lines, so
    // fences are tracked explicitly.
    let mut paragraphs: Vec<String> = Vec::new();
    let mut in_fence = false;
    let mut buf = String::new();
    for line in body.lines() {
        let fence = line.trim_start().starts_with("```") || line.trim_start().starts_with("~~~");
        if fence {
            in_fence = !in_fence;
        }
        if line.trim().is_empty() && !in_fence {
            if !buf.trim().is_empty() {
                paragraphs.push(std::mem::take(&mut buf));
            }
            buf.clear();
            continue;
        }
        if !buf.is_empty() {
            buf.push('\n');
        }
        buf.push_str(line);
    }
    if !buf.trim().is_empty() {
        paragraphs.push(buf);
    }
    for p in paragraphs {
        match classify(&p) {
            Kept::Yes => {}
            Kept::Heading => {
                // A new section starts a new passage once the current one is long enough.
                if words >= params.min_words {
                    flush(&mut current, &mut words, &mut out, &heading);
                }
                if current.is_empty() {
                    heading = Some(p.trim_start_matches('#').trim().to_string());
                }
                continue;
            }
            Kept::Quote => {
                filtered.quotes += 1;
                continue;
            }
            Kept::Code => {
                filtered.code += 1;
                continue;
            }
            Kept::Boilerplate => {
                filtered.boilerplate += 1;
                continue;
            }
        }
        let n = word_count(&p);
        if words > 0 && words + n > params.max_words {
            flush(&mut current, &mut words, &mut out, &heading);
        }
        let p = if n > params.max_words {
            crate::prompt::format::cap_words(&p, params.max_words)
        } else {
            p.trim().to_string()
        };
        words += word_count(&p);
        current.push(p);
    }
    flush(&mut current, &mut words, &mut out, &heading);
    // A short tail joins the passage before it rather than being lost.
    if out.len() > 1
        && out
            .last()
            .is_some_and(|p| word_count(&p.text) < params.min_words)
    {
        if let Some(tail) = out.pop() {
            if let Some(prev) = out.last_mut() {
                prev.text.push_str("\n\n");
                prev.text.push_str(&tail.text);
            }
        }
    }
    let before = out.len();
    out.retain(|p| word_count(&p.text) >= params.min_words);
    filtered.too_short += before - out.len();
    out
}

/// A document as the held-out split sees it: path, platform, and its text.
pub(super) type SplitDocument<'a> = (String, Option<String>, &'a str);

/// Which paths are held out: the first `round(n × fraction)` documents of each platform in an
/// order seeded by their *text*, not their path, so the same writing gets the same split
/// wherever the library lives (a path-keyed split changed with the checkout's folder).
///
/// `previous` is the split of the dataset built before (path → split): a document keeps the
/// side it was on, and only new documents are assigned, topping the platform up to its share.
/// Rebuilt datasets then share their held-out documents, so the scores of adapters trained
/// on successive versions stay comparable, and no adapter is scored on writing it trained on.
pub(super) fn held_out_paths(
    docs: &[SplitDocument<'_>],
    params: &DatasetParams,
    previous: &HashMap<String, Split>,
) -> HashSet<String> {
    let mut by_platform: BTreeMap<String, Vec<([u8; 32], &String)>> = BTreeMap::new();
    for (path, platform, text) in docs {
        let mut h = blake3::Hasher::new();
        h.update(&params.seed.to_le_bytes());
        h.update(text.as_bytes());
        by_platform
            .entry(platform.clone().unwrap_or_default())
            .or_default()
            .push((*h.finalize().as_bytes(), path));
    }
    let mut out = HashSet::new();
    for paths in by_platform.values_mut() {
        paths.sort();
        let total = paths.len();
        let n = (total as f64 * params.test_fraction).round() as usize;
        // Never hold out a platform's only document.
        let n = n.min(total.saturating_sub(1));
        let kept_test = paths
            .iter()
            .filter(|(_, p)| previous.get(*p) == Some(&Split::Test))
            .count();
        let new: Vec<&String> = paths
            .iter()
            .filter(|(_, p)| !previous.contains_key(*p))
            .map(|(_, p)| *p)
            .collect();
        let kept_train = total - kept_test - new.len();
        // New documents top the share up, leaving at least one to train on.
        let room = new.len() - usize::from(kept_train == 0 && !new.is_empty());
        let take = n.saturating_sub(kept_test).min(room);
        out.extend(
            paths
                .iter()
                .filter(|(_, p)| previous.get(*p) == Some(&Split::Test))
                .map(|(_, p)| p.to_string()),
        );
        out.extend(new.iter().take(take).map(|p| p.to_string()));
    }
    out
}
