//! `twin bench quality`: drafts a fixed set of topics in every format with each chain on the
//! user's library and the active model, and counts how many drafts could be posted as they
//! are ([`crate::draft::health`]). This is the measurement behind each model profile's default
//! chain, and the table a user runs to see whether a model or an adapter writes well enough.

use crate::bench::BenchRow;
use crate::draft::health::Health;
use crate::draft::{self, Chain, DraftError, DraftRequest, Format};
use crate::engine::{ChatMessage, ChatModel};
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
    /// Sampling temperature (`None`: drafting's default).
    pub temperature: Option<f32>,
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
    /// Perplexity of the text under the base model alone (no adapter), as the reply to a bare
    /// request for it: how far the text is from what a general model would write. Not a
    /// measure of coherence: on the sample writing the base model's own posts scored 10, the
    /// twin's 30 and the author's own posts 56 (2026-12-03), so it shows how far a voice
    /// moves a draft from generic text, with the user's own pieces as the reference.
    pub base_perplexity: f64,
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
                if let Some(t) = spec.temperature {
                    request.sampling.temperature = t;
                }
                let d = draft::draft(library, model, &request, cancel, &mut |_| {})?;
                let base_perplexity = base_perplexity(model, format, topic, &d.text, cancel)?;
                let measured = QualityDraft {
                    chain,
                    format,
                    topic: topic.clone(),
                    words: d.words,
                    text: d.text,
                    health: d.health,
                    base_perplexity,
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

/// The reference for [`QualityDraft::base_perplexity`]: the same measure of the user's own
/// pieces in `formats` (at most `per_format` each, cut to the format's longest draft), with
/// their titles as topics: how far from generic text the author's own writing is.
pub fn own_writing_perplexity(
    library: &Library,
    model: &ChatModel,
    formats: &[Format],
    per_format: usize,
    cancel: &CancelToken,
) -> Result<Vec<f64>, DraftError> {
    let store = library.store();
    let mut out = Vec::new();
    // One pass over the library: each piece is read once, whatever its format.
    let mut taken = vec![0usize; formats.len()];
    for id in store.original_document_ids()? {
        if taken.iter().all(|&n| n == per_format) {
            break;
        }
        let Some(doc) = store.document(id)? else {
            continue;
        };
        let platform = doc.info.platform.as_deref().unwrap_or_default();
        let Some(i) = formats
            .iter()
            .position(|f| f.platforms().contains(&platform))
            .filter(|&i| taken[i] < per_format && !doc.info.body.trim().is_empty())
        else {
            continue;
        };
        let format = formats[i];
        let text = crate::prompt::format::cap_words(&doc.info.body, format.length().max_words);
        out.push(base_perplexity(
            model,
            format,
            &doc.info.title,
            &text,
            cancel,
        )?);
        taken[i] += 1;
    }
    Ok(out)
}

/// `text`'s perplexity under `model` without its adapter, as the reply to "Write a {format}
/// about: {topic}" (see [`QualityDraft::base_perplexity`]).
fn base_perplexity(
    model: &ChatModel,
    format: Format,
    topic: &str,
    text: &str,
    cancel: &CancelToken,
) -> Result<f64, DraftError> {
    let request = [ChatMessage::user(format!(
        "Write a {} about: {topic}",
        format.display_name()
    ))];
    let encoded = model.encode_example(&request, text)?;
    let scored = model.score(&encoded.tokens, encoded.prompt_len, 0.0, cancel)?;
    Ok(scored.mean_nll().exp())
}

/// The table: per chain, the publishable count, how often each hard check failed, the mean
/// "sounds like you" (`voice`, when a classifier is fitted), the base-model perplexity (with
/// the user's `own` pieces' as the reference), the words per sentence (with the user's mean,
/// `own_sentence_words`, beside it) and the mean time per draft.
pub fn summary(
    drafts: &[QualityDraft],
    voice: &dyn Fn(&str) -> Option<f64>,
    own: &[f64],
    own_sentence_words: Option<f64>,
) -> Vec<BenchRow> {
    let mut rows = Vec::new();
    if !own.is_empty() {
        rows.push(BenchRow {
            metric: "your own writing: base-model perplexity".into(),
            value: format!("{:.1}", mean(own)),
            note: format!(
                "mean of {} of your pieces in these formats; {}",
                own.len(),
                range(own)
            ),
        });
    }
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
            let percent: Vec<f64> = scores.iter().map(|s| s * 100.0).collect();
            rows.push(BenchRow {
                metric: format!("{name}: sounds like you"),
                value: format!("{:.0}%", mean(&percent)),
                note: format!("mean; {}%", range_with(&percent, 0)),
            });
        }
        let mut lengths: Vec<usize> = of
            .iter()
            .flat_map(|d| draft::style::sentence_lengths(&d.text))
            .collect();
        if !lengths.is_empty() {
            lengths.sort_unstable();
            let as_f64: Vec<f64> = lengths.iter().map(|&n| n as f64).collect();
            rows.push(BenchRow {
                metric: format!("{name}: words per sentence"),
                value: format!("{:.1}", mean(&as_f64)),
                note: format!(
                    "mean; longest tenth from {} words, longest {}{}",
                    lengths[lengths.len() * 9 / 10],
                    lengths[lengths.len() - 1],
                    own_sentence_words
                        .map(|w| format!("; your writing: mean {w:.1}"))
                        .unwrap_or_default()
                ),
            });
        }
        let perplexities: Vec<f64> = of.iter().map(|d| d.base_perplexity).collect();
        rows.push(BenchRow {
            metric: format!("{name}: base-model perplexity"),
            value: format!("{:.1}", mean(&perplexities)),
            note: format!(
                "mean; {}; lower: nearer a general model's text",
                range(&perplexities)
            ),
        });
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

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len().max(1) as f64
}

/// `lo–hi` of `values`, one decimal.
fn range(values: &[f64]) -> String {
    range_with(values, 1)
}

/// `lo–hi` of `values` with `decimals`.
fn range_with(values: &[f64], decimals: usize) -> String {
    let (lo, hi) = values
        .iter()
        .fold((f64::MAX, f64::MIN), |(l, h), v| (l.min(*v), h.max(*v)));
    format!("{lo:.decimals$}–{hi:.decimals$}")
}
