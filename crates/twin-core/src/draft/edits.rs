//! How much of a draft the user changed before using it.

/// Share of words changed between `draft` and `final_text`, 0 (kept as written) to 1 (nothing
/// kept): 1 − 2·LCS / (words in both), where LCS is the longest run of words both keep in
/// order. Case and punctuation around a word count as changes; whitespace does not.
pub fn share_changed(draft: &str, final_text: &str) -> f64 {
    let a: Vec<&str> = draft.split_whitespace().collect();
    let b: Vec<&str> = final_text.split_whitespace().collect();
    if a.is_empty() && b.is_empty() {
        return 0.0;
    }
    // One row of the LCS table at a time: drafts are hundreds of words, not thousands.
    let mut row = vec![0usize; b.len() + 1];
    for x in &a {
        let mut diagonal = 0;
        for (j, y) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = if x == y {
                diagonal + 1
            } else {
                above.max(row[j])
            };
            diagonal = above;
        }
    }
    let lcs = row[b.len()] as f64;
    1.0 - 2.0 * lcs / (a.len() + b.len()) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_text_is_zero_and_rewritten_text_is_one() {
        assert_eq!(share_changed("a b  c", "a b\nc"), 0.0);
        assert_eq!(share_changed("a b c", "x y z"), 1.0);
        // Two of four words replaced: LCS 2 of 4 + 4.
        assert!((share_changed("we ship small changes", "we ship tiny diffs") - 0.5).abs() < 1e-9);
        // Words added at the end: the draft is kept whole.
        assert!((share_changed("a b", "a b c d") - (1.0 - 4.0 / 6.0)).abs() < 1e-9);
    }
}
