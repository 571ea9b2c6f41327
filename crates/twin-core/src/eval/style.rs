//! Stylometry: a profile of how a body of text is written (function words, sentence lengths,
//! punctuation and emoji, vocabulary richness) and distances between profiles.
//!
//! Function words ("the", "of", "but") are the classic authorship signal (Mosteller & Wallace,
//! Burrows): writers use them at stable, unconscious rates that do not depend on the topic, so a
//! draft about a new subject can still be compared with the user's past writing.

use serde::{Deserialize, Serialize};
use unicode_segmentation::UnicodeSegmentation;

pub use crate::prompt::words::FUNCTION_WORDS;

/// Punctuation marks (and emoji) whose rates per 100 words the profile keeps, in this order.
pub const MARKS: [&str; 10] = [
    "comma",
    "semicolon",
    "colon",
    "exclamation",
    "question",
    "dash",
    "parenthesis",
    "quote",
    "ellipsis",
    "emoji",
];

/// Words per window of the moving-average type-token ratio: short enough for a single post.
const MATTR_WINDOW: usize = 50;

/// How a body of text is written.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StyleProfile {
    /// Words counted.
    pub words: usize,
    /// Relative frequency of each of [`FUNCTION_WORDS`] among all words.
    pub function_words: Vec<f64>,
    /// Length in words of every sentence.
    pub sentence_lengths: Vec<usize>,
    /// Each of [`MARKS`] per 100 words.
    pub marks_per_100_words: Vec<f64>,
    /// Moving-average type-token ratio (vocabulary richness independent of length).
    pub mattr: f64,
}

/// How far one profile is from another, component by component.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[ts(export)]
pub struct StyleDistance {
    /// Burrows' Delta over function-word z-scores.
    pub delta: f64,
    /// Wasserstein-1 distance between the sentence-length distributions, in words.
    pub sentence_length: f64,
    /// Sum of absolute differences of punctuation and emoji rates per 100 words.
    pub punctuation: f64,
    /// Absolute difference of the moving-average type-token ratios.
    pub richness: f64,
}

impl StyleDistance {
    /// The components as (name, value) pairs, in report order.
    pub fn components(&self) -> [(&'static str, f64); 4] {
        [
            ("function words (Burrows' Delta)", self.delta),
            ("sentence length (W1, words)", self.sentence_length),
            ("punctuation and emoji (L1 per 100 words)", self.punctuation),
            ("vocabulary richness (|ΔMATTR|)", self.richness),
        ]
    }

    /// One number: each component divided by the same component measured between other
    /// people's writing and the user's (`others`), averaged. 1.0 means "as far from the user as
    /// other writers are"; lower is closer. Components where `others` is 0 are left out.
    pub fn relative_to(&self, others: &StyleDistance) -> f64 {
        let pairs = self.components().into_iter().zip(others.components());
        let ratios: Vec<f64> = pairs
            .filter(|(_, (_, o))| *o > 1e-12)
            .map(|((_, d), (_, o))| d / o)
            .collect();
        if ratios.is_empty() {
            0.0
        } else {
            ratios.iter().sum::<f64>() / ratios.len() as f64
        }
    }
}

/// Lower-cased words of `text` (Unicode word boundaries; numbers count as words).
pub fn words(text: &str) -> Vec<String> {
    text.unicode_words().map(str::to_lowercase).collect()
}

/// Sentence lengths in words. Lines are split first: posts and lists often end sentences with
/// a line break instead of a full stop.
pub fn sentence_lengths(text: &str) -> Vec<usize> {
    text.lines()
        .flat_map(|line| line.unicode_sentences())
        .map(|s| s.unicode_words().count())
        .filter(|&n| n > 0)
        .collect()
}

fn is_emoji(c: char) -> bool {
    matches!(c as u32, 0x1F000..=0x1FAFF | 0x2600..=0x27BF)
}

/// Counts of each of [`MARKS`] in `text`.
fn mark_counts(text: &str) -> [usize; 10] {
    let mut counts = [0usize; 10];
    let chars: Vec<char> = text.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        let slot = match c {
            ',' => Some(0),
            ';' => Some(1),
            ':' => Some(2),
            '!' => Some(3),
            '?' => Some(4),
            '—' | '–' => Some(5),
            // A hyphen between spaces is a dash typed on a keyboard.
            '-' if i > 0 && chars[i - 1] == ' ' && chars.get(i + 1).is_some_and(|n| *n == ' ') => {
                Some(5)
            }
            '(' => Some(6),
            '"' | '“' | '”' => Some(7),
            '…' => Some(8),
            // "..." counts once, at its first dot.
            '.' if chars.get(i + 1) == Some(&'.')
                && chars.get(i + 2) == Some(&'.')
                && (i == 0 || chars[i - 1] != '.') =>
            {
                Some(8)
            }
            c if is_emoji(c) => Some(9),
            _ => None,
        };
        if let Some(s) = slot {
            counts[s] += 1;
        }
    }
    counts
}

/// Moving-average type-token ratio over windows of [`MATTR_WINDOW`] words (plain TTR when the
/// text is shorter).
pub fn mattr(words: &[String]) -> f64 {
    if words.is_empty() {
        return 0.0;
    }
    let window = MATTR_WINDOW.min(words.len());
    let mut counts: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for w in &words[..window] {
        *counts.entry(w).or_default() += 1;
    }
    let mut total = counts.len() as f64;
    let mut windows = 1usize;
    for i in window..words.len() {
        let out = words[i - window].as_str();
        if let Some(n) = counts.get_mut(out) {
            *n -= 1;
            if *n == 0 {
                counts.remove(out);
            }
        }
        *counts.entry(&words[i]).or_default() += 1;
        total += counts.len() as f64;
        windows += 1;
    }
    total / (windows as f64 * window as f64)
}

impl StyleProfile {
    /// The profile of `texts` taken together. MATTR is averaged over the texts (weighted by
    /// length) so that windows never straddle two unrelated pieces.
    pub fn of<S: AsRef<str>>(texts: &[S]) -> Self {
        let mut fw = vec![0usize; FUNCTION_WORDS.len()];
        let index: std::collections::HashMap<&str, usize> = FUNCTION_WORDS
            .iter()
            .enumerate()
            .map(|(i, w)| (*w, i))
            .collect();
        let mut total_words = 0usize;
        let mut lengths = Vec::new();
        let mut marks = [0usize; 10];
        let mut mattr_sum = 0.0;
        for text in texts {
            let text = text.as_ref();
            let ws = words(text);
            for w in &ws {
                if let Some(&i) = index.get(w.as_str()) {
                    fw[i] += 1;
                }
            }
            total_words += ws.len();
            mattr_sum += mattr(&ws) * ws.len() as f64;
            lengths.extend(sentence_lengths(text));
            for (m, c) in marks.iter_mut().zip(mark_counts(text)) {
                *m += c;
            }
        }
        let n = total_words.max(1) as f64;
        Self {
            words: total_words,
            function_words: fw.iter().map(|&c| c as f64 / n).collect(),
            sentence_lengths: lengths,
            marks_per_100_words: marks.iter().map(|&c| c as f64 * 100.0 / n).collect(),
            mattr: mattr_sum / n,
        }
    }

    /// Mean sentence length in words (0 without sentences).
    pub fn mean_sentence_length(&self) -> f64 {
        if self.sentence_lengths.is_empty() {
            return 0.0;
        }
        self.sentence_lengths.iter().sum::<usize>() as f64 / self.sentence_lengths.len() as f64
    }
}

/// Per-word means and standard deviations of function-word rates across `texts`, one profile
/// per text: the scale on which Burrows' Delta measures differences.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeltaBasis {
    /// Mean rate of each function word.
    pub mean: Vec<f64>,
    /// Standard deviation of each rate (0: the word is left out).
    pub sd: Vec<f64>,
}

impl DeltaBasis {
    /// The basis from one profile per text.
    pub fn from_profiles(profiles: &[StyleProfile]) -> Self {
        let k = FUNCTION_WORDS.len();
        let n = profiles.len().max(1) as f64;
        let mut mean = vec![0.0; k];
        for p in profiles {
            for (m, f) in mean.iter_mut().zip(&p.function_words) {
                *m += f / n;
            }
        }
        let mut sd = vec![0.0; k];
        for p in profiles {
            for ((s, f), m) in sd.iter_mut().zip(&p.function_words).zip(&mean) {
                *s += (f - m).powi(2) / n;
            }
        }
        sd.iter_mut().for_each(|s| *s = s.sqrt());
        Self { mean, sd }
    }

    /// Burrows' Delta: the mean absolute difference of z-scores of `a` and `b`.
    pub fn delta(&self, a: &StyleProfile, b: &StyleProfile) -> f64 {
        let mut sum = 0.0;
        let mut used = 0usize;
        for i in 0..FUNCTION_WORDS.len() {
            if self.sd[i] <= 1e-12 {
                continue;
            }
            let za = (a.function_words[i] - self.mean[i]) / self.sd[i];
            let zb = (b.function_words[i] - self.mean[i]) / self.sd[i];
            sum += (za - zb).abs();
            used += 1;
        }
        if used == 0 {
            0.0
        } else {
            sum / used as f64
        }
    }

    /// Every component of the distance from `a` to `b`.
    pub fn distance(&self, a: &StyleProfile, b: &StyleProfile) -> StyleDistance {
        StyleDistance {
            delta: self.delta(a, b),
            sentence_length: wasserstein_1(&a.sentence_lengths, &b.sentence_lengths),
            punctuation: a
                .marks_per_100_words
                .iter()
                .zip(&b.marks_per_100_words)
                .map(|(x, y)| (x - y).abs())
                .sum(),
            richness: (a.mattr - b.mattr).abs(),
        }
    }
}

/// Earth mover's distance between two samples of integers: the area between their empirical
/// distribution functions. 0 when either sample is empty.
pub fn wasserstein_1(a: &[usize], b: &[usize]) -> f64 {
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    let max = a.iter().chain(b).copied().max().unwrap_or(0);
    let cdf = |xs: &[usize]| {
        let mut hist = vec![0usize; max + 1];
        for &x in xs {
            hist[x] += 1;
        }
        let mut acc = 0usize;
        hist.iter()
            .map(|&h| {
                acc += h;
                acc as f64 / xs.len() as f64
            })
            .collect::<Vec<f64>>()
    };
    cdf(a).iter().zip(cdf(b)).map(|(x, y)| (x - y).abs()).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_marks_sentences_and_richness() {
        let p = StyleProfile::of(&["The tool is sharp, use it; is it? Yes - really... 🙂"]);
        assert_eq!(p.words, 10);
        let rate =
            |name: &str| p.marks_per_100_words[MARKS.iter().position(|m| *m == name).unwrap()];
        for mark in [
            "comma",
            "semicolon",
            "question",
            "dash",
            "ellipsis",
            "emoji",
        ] {
            assert_eq!(rate(mark), 10.0, "{mark}");
        }
        assert_eq!(rate("exclamation"), 0.0);
        assert_eq!(p.sentence_lengths, vec![8, 2]);
        let the = FUNCTION_WORDS.iter().position(|w| *w == "the").unwrap();
        assert!((p.function_words[the] - 0.1).abs() < 1e-12);
        assert!((p.mattr - 0.8).abs() < 1e-12, "{}", p.mattr);
    }

    #[test]
    fn wasserstein_is_zero_for_equal_samples_and_grows_with_shift() {
        assert_eq!(wasserstein_1(&[3, 5, 8], &[8, 3, 5]), 0.0);
        assert!((wasserstein_1(&[3, 5], &[5, 7]) - 2.0).abs() < 1e-12);
    }

    #[test]
    fn delta_separates_a_different_writer() {
        let a =
            StyleProfile::of(&["The cat sat on the mat and the dog sat by the door of the house."]);
        let a2 = StyleProfile::of(&[
            "The man went to the shop and the boy went to the park of the town.",
        ]);
        let b = StyleProfile::of(&["I think you should just go, but I would never say so to her."]);
        let basis = DeltaBasis::from_profiles(&[a.clone(), a2.clone(), b.clone()]);
        assert!(basis.delta(&a, &a2) < basis.delta(&a, &b));
        let d = basis.distance(&a, &a);
        assert_eq!(d, StyleDistance::default());
        let others = basis.distance(&b, &a);
        assert!(basis.distance(&a2, &a).relative_to(&others) < 1.0);
    }
}
