//! Turning a stream of token bytes into text a reader can be shown: whole UTF-8 characters only,
//! and nothing that might turn out to be the start of a stop sequence.
//!
//! Both problems come from streaming: one emoji can span several tokens, and a stop sequence
//! such as `"\n\n---"` arrives piece by piece, so text is held back until it is certainly safe.

/// Accumulates token bytes and releases text that is complete and cannot begin a stop sequence.
#[derive(Debug, Default)]
pub(crate) struct TextStream {
    stops: Vec<String>,
    /// Bytes of an incomplete UTF-8 character at the end of the stream.
    partial: Vec<u8>,
    /// Decoded text not yet released because it could be the start of a stop sequence.
    held: String,
    /// Everything released so far.
    released: String,
}

/// What feeding one token produced.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Fed {
    /// Text safe to show now (may be empty).
    Text(String),
    /// A stop sequence appeared; this is the text before it that was not yet shown.
    Stopped(String),
}

impl TextStream {
    /// A stream that ends at the first of `stops` (empty strings are ignored).
    pub(crate) fn new(stops: &[String]) -> Self {
        Self {
            stops: stops.iter().filter(|s| !s.is_empty()).cloned().collect(),
            ..Self::default()
        }
    }

    /// Add one token's bytes.
    pub(crate) fn feed(&mut self, bytes: &[u8]) -> Fed {
        self.partial.extend_from_slice(bytes);
        let decoded = match std::str::from_utf8(&self.partial) {
            Ok(s) => {
                let s = s.to_string();
                self.partial.clear();
                s
            }
            Err(e) if e.error_len().is_none() => {
                // An incomplete character at the end: keep its bytes for the next token.
                let valid = e.valid_up_to();
                let s = String::from_utf8_lossy(&self.partial[..valid]).into_owned();
                self.partial.drain(..valid);
                s
            }
            Err(_) => {
                let s = String::from_utf8_lossy(&self.partial).into_owned();
                self.partial.clear();
                s
            }
        };
        self.held.push_str(&decoded);
        if let Some(at) = self.stops.iter().filter_map(|s| self.held.find(s)).min() {
            let before = self.held[..at].to_string();
            self.released.push_str(&before);
            self.held.clear();
            return Fed::Stopped(before);
        }
        let keep = self.longest_stop_prefix_suffix();
        let cut = self.held.len() - keep;
        let out: String = self.held.drain(..cut).collect();
        self.released.push_str(&out);
        Fed::Text(out)
    }

    /// Release whatever is held (the stream ended without a stop sequence).
    pub(crate) fn finish(&mut self) -> String {
        let mut out = std::mem::take(&mut self.held);
        if !self.partial.is_empty() {
            out.push_str(&String::from_utf8_lossy(&self.partial));
            self.partial.clear();
        }
        self.released.push_str(&out);
        out
    }

    /// All text released so far.
    pub(crate) fn text(&self) -> &str {
        &self.released
    }

    /// Length in bytes of the longest suffix of `held` that is a proper prefix of a stop sequence.
    fn longest_stop_prefix_suffix(&self) -> usize {
        let mut best = 0;
        for stop in &self.stops {
            for (i, _) in self.held.char_indices() {
                let suffix = &self.held[i..];
                if suffix.len() > best && suffix.len() < stop.len() && stop.starts_with(suffix) {
                    best = suffix.len();
                    break;
                }
            }
        }
        best
    }
}

/// Words in streamed text, counted piece by piece (a word may span pieces).
#[derive(Default)]
pub(crate) struct WordCount {
    /// Words so far.
    pub(crate) words: usize,
    in_word: bool,
}

impl WordCount {
    /// Count the words `piece` starts or continues.
    pub(crate) fn feed(&mut self, piece: &str) {
        for c in piece.chars() {
            let in_word = !c.is_whitespace();
            if in_word && !self.in_word {
                self.words += 1;
            }
            self.in_word = in_word;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multibyte_characters_are_released_whole() {
        let mut s = TextStream::new(&[]);
        let heart = "💜".as_bytes();
        assert_eq!(s.feed(&heart[..2]), Fed::Text(String::new()));
        assert_eq!(s.feed(&heart[2..]), Fed::Text("💜".into()));
        assert_eq!(s.text(), "💜");
    }

    #[test]
    fn stop_sequences_split_over_tokens_are_never_shown() {
        let mut s = TextStream::new(&["<END>".to_string()]);
        assert_eq!(s.feed(b"Hello <E"), Fed::Text("Hello ".into()));
        assert_eq!(s.feed(b"N"), Fed::Text(String::new()));
        assert_eq!(s.feed(b"D> more"), Fed::Stopped(String::new()));
        assert_eq!(s.text(), "Hello ");
    }

    #[test]
    fn held_text_that_is_not_a_stop_is_released() {
        let mut s = TextStream::new(&["<END>".to_string()]);
        assert_eq!(s.feed(b"a <"), Fed::Text("a ".into()));
        assert_eq!(s.feed(b"b"), Fed::Text("<b".into()));
        assert_eq!(s.feed(b" <E"), Fed::Text(" ".into()));
        assert_eq!(s.finish(), "<E");
        assert_eq!(s.text(), "a <b <E");
    }

    #[test]
    fn words_spanning_pieces_count_once() {
        let mut w = WordCount::default();
        for piece in ["#pri", "cing is", " hard.\n\n", "  Measure", " twice"] {
            w.feed(piece);
        }
        assert_eq!(w.words, 5);
    }
}
