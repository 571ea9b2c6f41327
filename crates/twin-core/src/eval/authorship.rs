//! The authorship check: "does this sound like you?" as a probability.
//!
//! Character n-grams (2–4, hashed) carry both vocabulary and the small habits of a writer —
//! punctuation, contractions, capitalisation — and need no tokenizer or model download.
//! Logistic regression on them is the standard strong baseline for short-text authorship
//! attribution; it trains in well under a second on a few hundred passages, so the app can
//! retrain it whenever the library changes. The negative class is reference writing by other
//! people that ships with Twin ([`reference_passages`]).

use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Hashed feature space (2^18): collisions are rare at a few thousand distinct n-grams.
const DIM: usize = 1 << 18;
/// Passes over the training set.
const EPOCHS: usize = 40;
/// L2 regularisation strength.
const L2: f32 = 1e-4;
/// SGD step size (features are L2-normalised, so this scale is stable).
const STEP: f32 = 0.5;
/// Reference passages are split into pieces of about this many words, close to the size of
/// the user's passages and of drafts.
const PIECE_WORDS: usize = 60;

/// Other people's writing, one passage per entry: the negative class, and the "others" side of
/// style distances.
pub fn reference_passages() -> Vec<String> {
    include_str!("reference_writing.md")
        .split("\n## ")
        .skip(1)
        .filter_map(|block| {
            block
                .split_once('\n')
                .map(|(_, body)| body.trim().to_string())
        })
        .filter(|body| !body.is_empty())
        .collect()
}

/// Split `text` into pieces of about [`PIECE_WORDS`] words at sentence-ish boundaries.
pub fn pieces(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut words = 0usize;
    for word in text.split_whitespace() {
        if !current.is_empty() {
            current.push(' ');
        }
        current.push_str(word);
        words += 1;
        let ends_sentence = word.ends_with(['.', '!', '?']);
        if (words >= PIECE_WORDS && ends_sentence) || words >= PIECE_WORDS * 2 {
            out.push(std::mem::take(&mut current));
            words = 0;
        }
    }
    if words >= PIECE_WORDS / 3 || (out.is_empty() && words > 0) {
        out.push(current);
    } else if let Some(last) = out.last_mut() {
        if words > 0 {
            last.push(' ');
            last.push_str(&current);
        }
    }
    out
}

/// FNV-1a: fast, stable across runs and platforms (the model must score the same tomorrow).
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Sparse features of `text`: log-scaled counts of character 2-, 3- and 4-grams (case kept:
/// capitalisation is a habit too), L2-normalised.
fn features(text: &str) -> Vec<(u32, f32)> {
    let normalised: Vec<char> = format!(
        " {} ",
        text.split_whitespace().collect::<Vec<_>>().join(" ")
    )
    .chars()
    .collect();
    let mut counts: HashMap<u32, f32> = HashMap::new();
    let mut buf = String::new();
    for n in 2..=4 {
        for window in normalised.windows(n) {
            buf.clear();
            buf.extend(window);
            buf.push(char::from(b'0' + n as u8));
            *counts
                .entry((fnv1a(buf.as_bytes()) % DIM as u64) as u32)
                .or_default() += 1.0;
        }
    }
    let mut features: Vec<(u32, f32)> = counts
        .into_iter()
        .map(|(i, c)| (i, (1.0 + c).ln()))
        .collect();
    let norm = features
        .iter()
        .map(|(_, v)| v * v)
        .sum::<f32>()
        .sqrt()
        .max(1e-9);
    features.iter_mut().for_each(|(_, v)| *v /= norm);
    features.sort_unstable_by_key(|(i, _)| *i);
    features
}

/// How the classifier was fitted, and how well it separates texts it did not see.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AuthorshipFit {
    /// User pieces trained on.
    pub user_pieces: usize,
    /// Reference pieces trained on.
    pub other_pieces: usize,
    /// Accuracy on the training pieces.
    pub train_accuracy: f64,
}

/// A fitted "sounds like you" classifier.
#[derive(Clone, Debug)]
pub struct AuthorshipModel {
    weights: Vec<f32>,
    bias: f32,
    /// How it was fitted.
    pub fit: AuthorshipFit,
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

impl AuthorshipModel {
    /// Fit on the user's texts against `others`. Both are cut into pieces of similar length and
    /// the classes are weighted to count equally. `None` when either side is empty.
    pub fn fit<S: AsRef<str>, T: AsRef<str>>(user: &[S], others: &[T]) -> Option<Self> {
        let mut samples: Vec<(Vec<(u32, f32)>, f32)> = Vec::new();
        for t in user {
            samples.extend(pieces(t.as_ref()).iter().map(|p| (features(p), 1.0)));
        }
        let user_pieces = samples.len();
        for t in others {
            samples.extend(pieces(t.as_ref()).iter().map(|p| (features(p), 0.0)));
        }
        let other_pieces = samples.len() - user_pieces;
        if user_pieces == 0 || other_pieces == 0 {
            return None;
        }
        let total = samples.len() as f32;
        let class_weight = |y: f32| {
            if y > 0.5 {
                total / (2.0 * user_pieces as f32)
            } else {
                total / (2.0 * other_pieces as f32)
            }
        };
        let mut model = Self {
            weights: vec![0.0; DIM],
            bias: 0.0,
            fit: AuthorshipFit {
                user_pieces,
                other_pieces,
                train_accuracy: 0.0,
            },
        };
        // A fixed-seed shuffle per epoch: the same library always gives the same model.
        let mut order: Vec<usize> = (0..samples.len()).collect();
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        for epoch in 0..EPOCHS {
            for i in (1..order.len()).rev() {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                order.swap(i, (seed % (i as u64 + 1)) as usize);
            }
            let step = STEP / (1.0 + epoch as f32 * 0.1);
            for &i in &order {
                let (x, y) = &samples[i];
                let error = (model.raw(x) - y) * class_weight(*y);
                for &(j, v) in x {
                    let w = &mut model.weights[j as usize];
                    *w -= step * (error * v + L2 * *w);
                }
                model.bias -= step * error;
            }
        }
        let correct = samples
            .iter()
            .filter(|(x, y)| (model.raw(x) >= 0.5) == (*y > 0.5))
            .count();
        model.fit.train_accuracy = correct as f64 / samples.len() as f64;
        Some(model)
    }

    fn raw(&self, x: &[(u32, f32)]) -> f32 {
        sigmoid(
            x.iter()
                .map(|&(j, v)| self.weights[j as usize] * v)
                .sum::<f32>()
                + self.bias,
        )
    }

    /// Probability (0–1) that `text` was written by the user. Long texts are scored piece by
    /// piece and averaged, as the model was trained on pieces.
    pub fn probability(&self, text: &str) -> f64 {
        let ps = pieces(text);
        if ps.is_empty() {
            return 0.0;
        }
        ps.iter()
            .map(|p| f64::from(self.raw(&features(p))))
            .sum::<f64>()
            / ps.len() as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_writing_is_shipped_and_pieced() {
        let refs = reference_passages();
        assert!(refs.len() >= 20, "{} passages", refs.len());
        assert!(refs
            .iter()
            .all(|r| !r.starts_with("<!--") && r.split_whitespace().count() > 40));
        let ps = pieces(&refs[1]);
        assert!(ps.len() >= 2);
        assert_eq!(
            ps.join(" ").split_whitespace().count(),
            refs[1].split_whitespace().count()
        );
    }

    #[test]
    fn separates_a_distinct_voice_from_the_references() {
        let user: Vec<String> = (0..12)
            .map(|i| {
                format!(
                    "Sand it again. Then stop. The grain tells you when — not the clock, \
                     not the client. I learned that at bench {i}, and I keep relearning it. \
                     Measure twice. Cut once. Ship when the drawer slides shut without a sound."
                )
            })
            .collect();
        let model = AuthorshipModel::fit(&user, &reference_passages()).unwrap();
        assert!(model.fit.train_accuracy > 0.9, "{:?}", model.fit);
        let mine = model.probability(
            "Sand it again, then stop. The grain tells you when — not the clock. Measure twice, \
             cut once, and ship when the drawer slides shut.",
        );
        let theirs = model.probability("By accessing the Service you agree to be bound by these Terms and any changes to them.");
        assert!(mine > 0.5 && theirs < 0.5, "mine {mine}, theirs {theirs}");
    }
}
