//! Word lists shared by the layers above: stylometry compares the rates of function words, and
//! the dataset builder tells a topic from filler with them.

/// English function words: the rates Burrows' Delta compares (`eval::style`), and words that
/// never make a topic on their own.
pub const FUNCTION_WORDS: [&str; 100] = [
    "the", "of", "and", "to", "a", "in", "that", "it", "is", "was", "i", "for", "on", "you", "he",
    "be", "with", "as", "by", "at", "have", "are", "this", "not", "but", "had", "his", "they",
    "from", "she", "which", "or", "we", "an", "there", "her", "were", "one", "do", "been", "all",
    "their", "has", "would", "will", "what", "if", "can", "when", "so", "no", "my", "more", "who",
    "out", "up", "them", "some", "could", "me", "into", "than", "then", "its", "now", "only",
    "our", "any", "just", "about", "because", "how", "most", "your", "very", "also", "after",
    "where", "much", "should", "those", "these", "even", "still", "never", "though", "while",
    "yet", "every", "each", "both", "why", "over", "before", "may", "might", "must", "too", "here",
    "once",
];
