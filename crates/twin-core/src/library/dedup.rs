//! Near-duplicate detection with 64-bit SimHash over word 3-shingles: drafts of the same post
//! differ in a few words, and their fingerprints differ in a few bits.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

/// Fingerprints within this many differing bits are near-duplicates.
pub const NEAR_DUPLICATE_BITS: u32 = 3;
/// Texts shorter than this many words are too short to fingerprint reliably.
const MIN_WORDS: usize = 20;

/// SimHash of `text`, or `None` when it is too short to judge.
pub fn simhash(text: &str) -> Option<u64> {
    let words: Vec<String> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect();
    if words.len() < MIN_WORDS {
        return None;
    }
    let mut weights = [0i32; 64];
    for shingle in words.windows(3) {
        let mut h = DefaultHasher::new();
        shingle.hash(&mut h);
        let h = h.finish();
        for (bit, w) in weights.iter_mut().enumerate() {
            *w += if h >> bit & 1 == 1 { 1 } else { -1 };
        }
    }
    Some(weights.iter().enumerate().fold(
        0u64,
        |acc, (bit, &w)| if w > 0 { acc | 1 << bit } else { acc },
    ))
}

/// An index of fingerprints answering "which stored document is this nearly identical to?".
/// Four 16-bit bands: two fingerprints within 3 bits must agree exactly on at least one band
/// (pigeonhole), so a lookup only compares against documents sharing a band.
#[derive(Default)]
pub struct NearDuplicateIndex {
    bands: [std::collections::HashMap<u16, Vec<(i64, u64)>>; 4],
}

impl NearDuplicateIndex {
    /// Add a document's fingerprint.
    pub fn insert(&mut self, id: i64, hash: u64) {
        for (i, band) in self.bands.iter_mut().enumerate() {
            band.entry((hash >> (16 * i)) as u16)
                .or_default()
                .push((id, hash));
        }
    }

    /// Remove a document's fingerprint.
    pub fn remove(&mut self, id: i64) {
        for band in &mut self.bands {
            for list in band.values_mut() {
                list.retain(|(d, _)| *d != id);
            }
        }
    }

    /// The closest document other than `exclude` within [`NEAR_DUPLICATE_BITS`].
    pub fn find(&self, hash: u64, exclude: Option<i64>) -> Option<i64> {
        self.bands
            .iter()
            .enumerate()
            .filter_map(|(i, band)| band.get(&((hash >> (16 * i)) as u16)))
            .flatten()
            .filter(|(id, _)| Some(*id) != exclude)
            .map(|(id, h)| ((h ^ hash).count_ones(), *id))
            .filter(|(bits, _)| *bits <= NEAR_DUPLICATE_BITS)
            .min()
            .map(|(_, id)| id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drafts_match_and_other_texts_do_not() {
        let a = "Here's the thing about shipping small: the first version of anything you build is a \
                 question, not an answer. Put it in front of people early, listen hard, and let the \
                 workshop teach you what the drawing could not. Measure twice, ship once.";
        let b = a.replace("listen hard", "listen carefully");
        let c = "Sourdough needs patience, warm water and a starter that has been fed twice a day for a \
                 week; the crumb tells you everything about how honest you were with the timings.";
        let (ha, hb, hc) = (
            simhash(a).unwrap(),
            simhash(&b).unwrap(),
            simhash(c).unwrap(),
        );
        let mut index = NearDuplicateIndex::default();
        index.insert(1, ha);
        index.insert(3, hc);
        assert!((ha ^ hb).count_ones() <= 12, "drafts should be close");
        assert_eq!(index.find(ha, Some(99)), Some(1));
        assert_eq!(index.find(ha, Some(1)), None);
        assert!((ha ^ hc).count_ones() > NEAR_DUPLICATE_BITS);
    }
}
