//! Model profiles: which drafting chain a chat model gets, by its size.
//!
//! A chain step helps only a model that can do it. The defaults below come from measuring the
//! publishable rate (see [`super::health`]) with `twin bench quality` for each chain; where a
//! size class is not measured yet it gets the full chain. The numbers are in the README. A
//! revision that fails checks its draft passed is discarded, so the full chain cannot make a
//! draft worse by the checks' measure.

use crate::prompt::format::Format;
use serde::{Deserialize, Serialize};

/// Which steps write a draft (articles always plan their sections first).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[derive(ts_rs::TS)]
#[ts(export)]
pub enum Chain {
    /// One grounded pass: context, exemplars and the format's rules, then the text.
    Direct,
    /// A short plan of points, then the text following it.
    Outlined,
    /// Plan, text, the model's critique of its text, and a revision.
    Full,
}

impl Chain {
    /// Every chain, for comparisons.
    pub const ALL: [Chain; 3] = [Chain::Direct, Chain::Outlined, Chain::Full];

    /// Whether the chain plans before it writes.
    pub fn outlines(self) -> bool {
        self != Chain::Direct
    }

    /// Whether the chain critiques and revises its text.
    pub fn revises(self) -> bool {
        self == Chain::Full
    }
}

/// Whether `step` writes the draft's text (before shaping and any revision), in any chain: what
/// shells that stream one text show as it is written, the first text the model writes after its
/// plan. A revising chain's revision replaces it in the final draft only when it passes as many
/// checks (3 of 12 small-model posts, 2026-12-04); streaming the revision instead made the user
/// wait through the draft and critique (~10 s on 2 cores) for a text usually discarded.
pub fn writes_draft_text(step: &str) -> bool {
    matches!(step, "draft" | "section")
}

impl std::str::FromStr for Chain {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "direct" => Ok(Self::Direct),
            "outlined" | "outline" => Ok(Self::Outlined),
            "full" => Ok(Self::Full),
            other => Err(format!(
                "unknown chain {other:?} (direct, outlined or full)"
            )),
        }
    }
}

/// How drafting treats a model of some size.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Profile {
    /// "small" (under 1B parameters), "medium" (under 4B) or "large".
    pub size_class: &'static str,
    /// The defaults for posts (LinkedIn, X threads).
    pub post: FormatDefaults,
    /// The defaults for the long formats, articles and newsletters, which are written in parts
    /// (each part checked and retried on its own): a `Full` chain adds a revision of the whole.
    pub long: FormatDefaults,
}

/// A profile's defaults for one kind of format.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct FormatDefaults {
    /// The chain.
    pub chain: Chain,
    /// Alternative search queries the model writes before retrieval.
    pub expansions: usize,
    /// Retrieved passages in the prompt at most.
    pub context_chunks: usize,
    /// An outlining chain's plan is the author's own sentences on the topic, taken from the
    /// retrieved passages (`draft::points`), instead of a plan the model writes (not for
    /// articles, which plan headings).
    pub own_points: bool,
}

impl Profile {
    /// The defaults for `format`: a post's, or a long text's (articles, newsletters).
    pub fn for_format(&self, format: Format) -> FormatDefaults {
        if format.is_long() {
            self.long
        } else {
            self.post
        }
    }
}

/// The chain as designed, for sizes not measured yet: plan, write, critique, revise, from six
/// passages and three query expansions.
const AS_DESIGNED: FormatDefaults = FormatDefaults {
    chain: Chain::Full,
    expansions: 3,
    context_chunks: 6,
    own_points: false,
};

/// The profile of a model with `parameters` parameters.
pub fn for_parameters(parameters: u64) -> Profile {
    match parameters {
        // SmolLM2-135M with its voice adapter, 12 drafts a chain (`twin bench quality`):
        // full 6/12 publishable, outlined 2/12, direct 2/12.
        // No query expansion for posts: this model's expansions restate the topic
        // ("take-a-real-holiday, as-founder") or read the instruction back, and are mostly
        // dropped as such. Measured on 12 posts (six topics × LinkedIn and X, 2026-12-03, three
        // passages): 12/12 publishable without it, 11/12 with it, "sounds like you" 75% against
        // 78%, and ~0.8 s less before the first token on 2 cores. (A single main-job draft had
        // suggested the opposite the day before; the 12 posts overrule it.) Long texts keep it:
        // articles and newsletters on the three default topics were 4/6 publishable with it,
        // 3/6 without ("sounds like you" 77% against 74%), and a long text's reader waits for
        // 500 words anyway.
        // Posts from three passages (`twin bench quality --formats linkedin,thread`, six topics,
        // 12 posts, 2026-12-03, Q8_0 + voice adapter): 11/12 publishable with six passages,
        // 11/12 with three (9/12 with four: one draft is ±8 points here), longest pasted run
        // 10 → 5 words, "sounds like you" 81% → 78%; the prompt is ~300 tokens shorter, which on
        // 2 cores is ~1 s of the first token. Long texts keep six: they have more to say.
        p if p < 1_000_000_000 => Profile {
            size_class: "small",
            // The plan from the author's own sentences (12 posts, six topics × LinkedIn and X,
            // 2026-12-04): 12/12 publishable as with the model's plan, "sounds like you" 80%
            // against 76%, 13.1 s a post against 23.4 s (no plan to generate). The model's
            // plans restated the topic in vague bullets; the author's sentences carry her
            // points ("Price the whole shop, not just the cut.").
            post: FormatDefaults {
                chain: Chain::Full,
                expansions: 0,
                context_chunks: 3,
                own_points: true,
            },
            // Long formats written in parts (`twin bench quality --chains outlined,full`,
            // 2026-12-03, Q8_0 + voice adapter): articles 2/3 publishable either way, the same
            // texts (the whole-text revision was never kept), 58 s against 88 s a draft;
            // newsletters 2/3 either way, the same texts, 24 s against 49 s. The revision does
            // not pay for itself on long texts from this model.
            // Newsletters from the author's own points (one part each) measured alike
            // (2026-12-04, six topics: 5/6 publishable either way, "sounds like you" 73%
            // against 75%): the model's outline stays for long texts.
            long: FormatDefaults {
                chain: Chain::Outlined,
                ..AS_DESIGNED
            },
        },
        p if p < 4_000_000_000 => Profile {
            size_class: "medium",
            post: AS_DESIGNED,
            long: AS_DESIGNED,
        },
        _ => Profile {
            size_class: "large",
            post: AS_DESIGNED,
            long: AS_DESIGNED,
        },
    }
}
