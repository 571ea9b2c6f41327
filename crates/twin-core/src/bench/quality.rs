//! `twin bench quality`: drafts a fixed set of topics in every format with each chain on the
//! user's library and the active model, and counts how many drafts could be posted as they
//! are ([`crate::draft::health`]). This is the measurement behind each model profile's default
//! chain, and the table a user runs to see whether a model or an adapter writes well enough.

use crate::bench::BenchRow;
use crate::draft::health::Health;
use crate::draft::{self, Chain, DraftError, DraftRequest, Format};
use crate::engine::ChatModel;
use crate::library::Library;
use crate::progress::CancelToken;
use serde::Serialize;

/// Topics the sample writing's author would write about, none of them among its titles.
pub const TOPICS: [&str; 3] = [
    "how to price a small software product",
    "handing over a codebase to a new maintainer",
    "why a tiny company should say no more often",
];

/// What to draft.
#[derive(Clone, Debug)]
pub struct QualitySpec {
    /// Topics (default [`TOPICS`]).
    pub topics: Vec<String>,
    /// Formats (default: all four).
    pub formats: Vec<Format>,
    /// Chains to compare.
    pub chains: Vec<Chain>,
    /// Adapter strength (0 = base model).
    pub adapter_scale: f32,
    /// How the prompts name the author.
    pub author: String,
    /// Sampling seed (the same seed gives the same drafts).
    pub seed: u32,
    /// Retrieved passages in each prompt (`None`: the model's profile).
    pub context_chunks: Option<usize>,
    /// Query expansions before retrieval (`None`: the model's profile).
    pub expansions: Option<usize>,
}

/// One measured draft.
#[derive(Clone, Debug, Serialize)]
pub struct QualityDraft {
    /// The chain that wrote it.
    pub chain: Chain,
    /// Its format.
    pub format: Format,
    /// Its topic.
    pub topic: String,
    /// The text.
    pub text: String,
    /// Words.
    pub words: usize,
    /// The checks.
    pub health: Health,
    /// Time to the first token, ms.
    pub first_token_ms: f64,
    /// Whole draft, ms.
    pub total_ms: f64,
}

/// Draft every topic × format × chain of `spec`; `on_draft` sees each as it is done.
pub fn run(
    library: &mut Library,
    model: &ChatModel,
    spec: &QualitySpec,
    cancel: &CancelToken,
    on_draft: &mut dyn FnMut(&QualityDraft),
) -> Result<Vec<QualityDraft>, DraftError> {
    let mut out = Vec::new();
    for &chain in &spec.chains {
        for &format in &spec.formats {
            for topic in &spec.topics {
                let mut request = DraftRequest::new(topic.clone(), format);
                request.chain = Some(chain);
                request.adapter_scale = spec.adapter_scale;
                request.author = spec.author.clone();
                request.sampling.seed = spec.seed;
                request.context_chunks = spec.context_chunks;
                request.expansions = spec.expansions;
                let d = draft::draft(library, model, &request, cancel, &mut |_| {})?;
                let measured = QualityDraft {
                    chain,
                    format,
                    topic: topic.clone(),
                    words: d.words,
                    text: d.text,
                    health: d.health,
                    first_token_ms: d.timings.first_token_ms,
                    total_ms: d.timings.total_ms,
                };
                on_draft(&measured);
                out.push(measured);
            }
        }
    }
    Ok(out)
}

/// The table: per chain, the publishable count, how often each hard check failed, the mean
/// "sounds like you" (`voice`, when a classifier is fitted) and the mean time per draft.
pub fn summary(drafts: &[QualityDraft], voice: &dyn Fn(&str) -> Option<f64>) -> Vec<BenchRow> {
    let mut rows = Vec::new();
    for chain in Chain::ALL {
        let of: Vec<&QualityDraft> = drafts.iter().filter(|d| d.chain == chain).collect();
        if of.is_empty() {
            continue;
        }
        let name = format!("{chain:?}").to_lowercase();
        let publishable = of.iter().filter(|d| d.health.publishable).count();
        let by_format: Vec<String> = Format::ALL
            .iter()
            .filter_map(|f| {
                let n = of.iter().filter(|d| d.format == *f).count();
                (n > 0).then(|| {
                    let ok = of
                        .iter()
                        .filter(|d| d.format == *f && d.health.publishable)
                        .count();
                    format!("{} {ok}/{n}", f.platform())
                })
            })
            .collect();
        rows.push(BenchRow {
            metric: format!("{name}: publishable"),
            value: format!("{publishable}/{}", of.len()),
            note: by_format.join(", "),
        });
        let mut failures: Vec<(String, usize)> = Vec::new();
        for d in &of {
            for c in d.health.failures() {
                match failures.iter_mut().find(|(n, _)| *n == c.name) {
                    Some((_, k)) => *k += 1,
                    None => failures.push((c.name.clone(), 1)),
                }
            }
        }
        rows.push(BenchRow {
            metric: format!("{name}: failed checks"),
            value: failures.iter().map(|(_, k)| k).sum::<usize>().to_string(),
            note: if failures.is_empty() {
                "none".into()
            } else {
                failures
                    .iter()
                    .map(|(n, k)| format!("{n} {k}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        });
        let copied = of
            .iter()
            .filter_map(|d| d.health.check("copying").map(|c| c.value))
            .fold(0.0, f64::max);
        rows.push(BenchRow {
            metric: format!("{name}: longest copied run"),
            value: format!("{copied:.0} words"),
            note: format!("at most {} allowed", draft::health::MAX_SHARED_RUN),
        });
        let scores: Vec<f64> = of.iter().filter_map(|d| voice(&d.text)).collect();
        if !scores.is_empty() {
            let mean = scores.iter().sum::<f64>() / scores.len() as f64;
            let (lo, hi) = scores
                .iter()
                .fold((f64::MAX, f64::MIN), |(l, h), s| (l.min(*s), h.max(*s)));
            rows.push(BenchRow {
                metric: format!("{name}: sounds like you"),
                value: format!("{:.0}%", mean * 100.0),
                note: format!("mean; {:.0}–{:.0}%", lo * 100.0, hi * 100.0),
            });
        }
        let mean_s = of.iter().map(|d| d.total_ms).sum::<f64>() / of.len() as f64 / 1e3;
        let first = of.iter().map(|d| d.first_token_ms).sum::<f64>() / of.len() as f64;
        rows.push(BenchRow {
            metric: format!("{name}: time per draft"),
            value: format!("{mean_s:.1} s"),
            note: format!("mean; first token {first:.0} ms"),
        });
    }
    rows
}
