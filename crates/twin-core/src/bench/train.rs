//! `twin bench train`: training speed on the user's dataset, and what it means for them (the
//! time one epoch over 50,000 words of their writing would take; the goal is under 10 minutes).

use super::{peak_rss_mib, row, BenchRow};
use crate::train::{trainer, Dataset, TrainError, TrainParams};
use std::path::Path;

/// `steps` training steps on `dataset` (nothing is stored), as table rows: tokens/s (overall,
/// median, min–max), tokens per word, the 50k-word epoch estimate, peak RSS.
pub fn train(
    base_path: &Path,
    dataset: &Dataset,
    params: &TrainParams,
    steps: usize,
) -> Result<Vec<BenchRow>, TrainError> {
    let speed = trainer::measure_speed(base_path, dataset, params, steps)?;
    let rates = &speed.step_rates;
    let median = rates.get(rates.len() / 2).copied().unwrap_or(0.0);
    let (min, max) = (
        rates.first().copied().unwrap_or(0.0),
        rates.last().copied().unwrap_or(0.0),
    );
    let overall = speed.overall_tokens_per_second;
    let epoch_50k = 50_000.0 * speed.tokens_per_word / overall.max(1e-9);
    Ok(vec![
        row("device", &speed.device, "where candle runs the training steps"),
        row(
            "model",
            format!(
                "{} · {:.0}M parameters",
                speed.architecture,
                speed.parameters as f64 / 1e6
            ),
            format!(
                "LoRA rank {} on {} projections, {} trainable parameters; f32 weights loaded in {:.1} s",
                params.lora.rank,
                params.lora.targets.len(),
                speed.lora_parameters,
                speed.load_seconds
            ),
        ),
        row(
            "training tokens/s",
            format!("{overall:.0} (steps: median {median:.0}, min {min:.0}, max {max:.0})"),
            format!(
                "all tokens over all time of {} steps of ≤ {} packed tokens, forward + backward + AdamW",
                rates.len(),
                params.sequence_tokens
            ),
        ),
        row(
            "tokens per word of your writing",
            format!("{:.2}", speed.tokens_per_word),
            "tokens one epoch computes (prompts + replies, shared prompt prefixes once, replay included) over the words of your writing",
        ),
        row(
            "50k words, 1 epoch",
            format!("{:.1} min", epoch_50k / 60.0),
            "at that speed (goal: under 10 min on 2 cores)",
        ),
        row(
            "peak RSS",
            format!("{:.0} MiB", peak_rss_mib()),
            "whole process, VmHWM",
        ),
    ])
}
