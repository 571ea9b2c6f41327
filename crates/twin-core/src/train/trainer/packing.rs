//! Examples into packed sequences: encoding, grouping examples that share a prompt beginning, packing
//! up to the sequence length, and a seeded shuffle.

use super::*;

pub(super) fn encode_all(
    tokenizer: &ChatTokenizer,
    examples: &[&Example],
    max_tokens: usize,
) -> Result<Vec<EncodedExample>, TrainError> {
    examples
        .iter()
        .map(|e| {
            let mut enc = tokenizer.encode_example(&e.messages, &e.reply)?;
            // Keep the prompt and the start of the reply; a prompt alone teaches nothing.
            enc.tokens.truncate(max_tokens + 1);
            Ok(enc)
        })
        .filter(|r| {
            r.as_ref()
                .map(|e: &EncodedExample| e.tokens.len() > e.prompt_len + 1)
                .unwrap_or(true)
        })
        .collect()
}

/// Examples share a prompt prefix in a packed sequence only from this many tokens on: a
/// shorter one saves less than it costs to keep unlike examples apart.
pub(super) const MIN_SHARED_PREFIX: usize = 8;

/// Examples that begin with the same prompt tokens, as [`pack`] gathers them.
pub(super) struct Group<'a> {
    pub(super) members: Vec<&'a EncodedExample>,
    /// Tokens every member's prompt begins with (a lone member: its whole prompt).
    pub(super) prefix: usize,
}

impl<'a> Group<'a> {
    pub(super) fn new(first: &'a EncodedExample) -> Self {
        Self {
            members: vec![first],
            prefix: first.prompt_len.saturating_sub(1),
        }
    }

    /// The prefix the group would share with `e` added.
    pub(super) fn prefix_with(&self, e: &EncodedExample) -> usize {
        let first = &self.members[0].tokens;
        let common = first
            .iter()
            .zip(&e.tokens)
            .take(self.prefix)
            .take_while(|(a, b)| a == b)
            .count();
        common.min(e.prompt_len.saturating_sub(1))
    }

    /// Whether the members compute a shared prefix.
    pub(super) fn shares(&self) -> bool {
        self.members.len() >= 2 && self.prefix >= MIN_SHARED_PREFIX
    }

    /// Input tokens the group computes, with `extra` added and `prefix` shared.
    pub(super) fn cost(&self, extra: Option<&EncodedExample>, prefix: usize) -> usize {
        let n = self.members.len() + usize::from(extra.is_some());
        let sum: usize = self
            .members
            .iter()
            .copied()
            .chain(extra)
            .map(|e| e.tokens.len() - 1)
            .sum();
        if n >= 2 && prefix >= MIN_SHARED_PREFIX {
            sum + prefix - n * prefix
        } else {
            sum
        }
    }

    pub(super) fn push_to(&self, seq: &mut Sequence) {
        let examples: Vec<(&[u32], usize)> = self
            .members
            .iter()
            .map(|e| (e.tokens.as_slice(), e.prompt_len))
            .collect();
        seq.push_shared(&examples, if self.shares() { self.prefix } else { 0 });
    }
}

/// Pack examples into sequences of at most `max_tokens` input tokens.
///
/// First, each example joins the group (of at most `max_tokens`) whose examples begin with the
/// most of the same tokens — for drafting prompts, the same system prompt and format rules, up
/// to the topic — and each group computes that common beginning once instead of once per
/// example: on the sample writing a fifth of all tokens. Then the groups fill sequences in the
/// order they were started (first fit), so small groups and lone examples share a sequence.
pub(super) fn pack(examples: &[&EncodedExample], max_tokens: usize) -> Vec<Sequence> {
    let mut groups: Vec<Group> = Vec::new();
    for &e in examples {
        let best = groups
            .iter()
            .enumerate()
            .filter_map(|(i, g)| {
                let prefix = g.prefix_with(e);
                // Most of the group's shared prompt must stay shared: another format's
                // example would cut it to the first words of the system prompt.
                (prefix >= MIN_SHARED_PREFIX
                    && 2 * prefix >= g.prefix
                    && g.cost(Some(e), prefix) <= max_tokens)
                    .then_some((i, prefix))
            })
            .max_by_key(|&(i, prefix)| (prefix, std::cmp::Reverse(i)));
        match best {
            Some((i, prefix)) => {
                groups[i].members.push(e);
                groups[i].prefix = prefix;
            }
            None => groups.push(Group::new(e)),
        }
    }
    let mut sequences: Vec<Sequence> = Vec::new();
    for g in &groups {
        let cost = g.cost(None, g.prefix);
        match sequences.iter_mut().find(|s| s.len() + cost <= max_tokens) {
            Some(seq) => g.push_to(seq),
            None => {
                let mut seq = Sequence::default();
                g.push_to(&mut seq);
                sequences.push(seq);
            }
        }
    }
    sequences
}

/// A seeded Fisher–Yates shuffle (epoch order is part of what makes a resume exact).
pub(super) fn shuffled<T: Copy>(items: &[T], seed: u64) -> Vec<T> {
    let mut out = items.to_vec();
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for i in (1..out.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let j = (state % (i as u64 + 1)) as usize;
        out.swap(i, j);
    }
    out
}
