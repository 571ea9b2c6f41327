//! The preference term trained beside the usual next-token loss: for a pair of replies to one
//! prompt, the user's text (`chosen`) and a model's draft (`rejected`), it raises the adapter's
//! log-probability of the user's text relative to the draft. Two objectives:
//!
//! - **DPO** (Rafailov et al., 2023), measured against the reference model. With LoRA the
//!   reference is the same model with the adapter off (`Pass::Base`), so no second copy is
//!   loaded; its log-probabilities are computed once per pair.
//!   loss = w · −log σ(β · [(log π(c) − log π(r)) − (log π_ref(c) − log π_ref(r))]),
//!   log-probabilities summed over each reply's tokens.
//! - **SimPO** (Meng et al., 2024), reference-free and length-normalised:
//!   loss = w · −log σ(β · [log π(c)/|c| − log π(r)/|r|] − γ).
//! - **Length-normalised DPO** (LN-DPO, the SimPO paper's baseline): DPO on per-token
//!   log-probabilities, so the margin is in the same units as the held-out one and next-token
//!   training alone does not push it into the sigmoid's flat tail:
//!   loss = w · −log σ(β · [(log π(c)/|c| − log π(r)/|r|) − (same under π_ref)]).
//!
//! LN-DPO is the default (see [`PreferenceParams::default`]). Why SimPO was tried: Twin trains the preference term *beside* next-token training on the
//! same passages, and next-token training alone already moves DPO's summed margin by hundreds
//! of nats on a 200-token passage (the per-token margin rises by ~1.4 nats on the sample
//! writing), which may saturate DPO's sigmoid. SimPO's per-token margin against a fixed target
//! γ keeps pushing. Measured (`twin bench preference`, 57 pairs, 30 steps): it pushed too hard —
//! held-out loss 3.90 against SFT's 3.38, early-stopped at step 15, "sounds like you" 25% against
//! 64% — so SimPO stays an option.

use super::super::llama::{LoraModel, Pass, Sequence};
use super::super::preferences::PreferencePair;
use super::super::TrainError;
use crate::engine::ChatTokenizer;
use candle_core::backprop::GradStore;
use serde::{Deserialize, Serialize};

/// Which preference objective (see the module's documentation).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Objective {
    /// Direct preference optimisation against the adapter-off reference.
    #[default]
    Dpo,
    /// Reference-free, length-normalised, with a target margin γ.
    Simpo,
    /// DPO on per-token log-probabilities, against the adapter-off reference.
    LnDpo,
}

impl Objective {
    /// The objective's usual β (DPO 0.1 on summed log-probabilities; SimPO 2.0 and LN-DPO 1.0
    /// per token).
    pub fn default_beta(self) -> f64 {
        match self {
            Objective::Dpo => 0.1,
            Objective::Simpo => 2.0,
            Objective::LnDpo => 1.0,
        }
    }

    /// Whether the term is measured against the reference model (the adapter off).
    fn uses_reference(self) -> bool {
        self != Objective::Simpo
    }
}

/// How the preference term is weighted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PreferenceParams {
    /// The objective. Older runs recorded none: DPO.
    #[serde(default)]
    pub objective: Objective,
    /// β: for DPO how far from the reference the adapter may move for a preference; for SimPO
    /// the scale of the per-token margin.
    pub beta: f64,
    /// SimPO's target margin γ (in β-scaled nats; unused by DPO).
    #[serde(default = "default_gamma")]
    pub gamma: f64,
    /// The term's weight against the next-token loss.
    pub weight: f64,
}

fn default_gamma() -> f64 {
    1.0
}

impl PreferenceParams {
    /// `objective` with its usual β and γ.
    pub fn new(objective: Objective) -> Self {
        Self {
            objective,
            beta: objective.default_beta(),
            gamma: default_gamma(),
            weight: 1.0,
        }
    }
}

/// The default: length-normalised DPO. Measured (`twin bench preference`, sample writing, 54
/// pairs, 30 steps, 2026-12-03): held-out margin −0.304 ± 0.453 nats/token against −0.858 ±
/// 0.397 with next-token training alone (base −2.221), held-out loss unchanged (3.382 against
/// 3.381), "sounds like you" of 12 drafts on held-out topics 71.1% ± 12.9 against 58.3% ± 13.5.
/// Summed-log-probability DPO had moved the margin by +0.051 (inside the spread): next-token
/// training pushes its summed margin into the sigmoid's flat tail within a few steps.
/// (`Objective`'s own default stays DPO: runs recorded before the field existed were DPO.)
impl Default for PreferenceParams {
    fn default() -> Self {
        Self::new(Objective::LnDpo)
    }
}

/// One pair ready to train on: each reply in a sequence of its own, and the reference margin.
pub(super) struct EncodedPair {
    chosen: Sequence,
    rejected: Sequence,
    /// log π_ref(chosen) − log π_ref(rejected): summed over reply tokens for DPO, per token for
    /// LN-DPO; 0 for SimPO, which has no reference.
    reference_margin: f64,
}

fn sequence(
    tokenizer: &ChatTokenizer,
    pair: &PreferencePair,
    reply: &str,
    max_tokens: usize,
) -> Result<Option<Sequence>, TrainError> {
    let mut enc = tokenizer.encode_example(&pair.prompt, reply)?;
    enc.tokens.truncate(max_tokens + 1);
    if enc.tokens.len() <= enc.prompt_len + 1 {
        return Ok(None);
    }
    let mut s = Sequence::default();
    s.push_example(&enc.tokens, enc.prompt_len);
    Ok(Some(s))
}

/// Log-probability of a sequence's reply tokens: summed, or per token (`per_token`).
fn log_prob(
    model: &LoraModel,
    s: &Sequence,
    pass: Pass,
    per_token: bool,
) -> Result<f64, TrainError> {
    let (mean_nll, n) = model.loss(s, pass)?;
    let scale = if per_token { 1.0 } else { n as f64 };
    Ok(-f64::from(mean_nll.to_scalar::<f32>()?) * scale)
}

/// Encode `pairs` for `model` (cut to `max_tokens`; a pair whose reply does not fit is left
/// out) and, for DPO, compute their reference margins with the adapter off.
pub(super) fn encode_pairs(
    model: &LoraModel,
    tokenizer: &ChatTokenizer,
    pairs: &[PreferencePair],
    max_tokens: usize,
    objective: Objective,
) -> Result<Vec<EncodedPair>, TrainError> {
    let mut out = Vec::new();
    for pair in pairs {
        let (Some(chosen), Some(rejected)) = (
            sequence(tokenizer, pair, &pair.chosen, max_tokens)?,
            sequence(tokenizer, pair, &pair.rejected, max_tokens)?,
        ) else {
            continue;
        };
        let reference_margin = if objective.uses_reference() {
            let per_token = objective == Objective::LnDpo;
            model.device().with_context(|| {
                Ok::<_, TrainError>(
                    log_prob(model, &chosen, Pass::Base, per_token)?
                        - log_prob(model, &rejected, Pass::Base, per_token)?,
                )
            })?
        } else {
            0.0
        };
        out.push(EncodedPair {
            chosen,
            rejected,
            reference_margin,
        });
    }
    Ok(out)
}

/// The preference term on `pair` and its gradients; also the margin it works on: for DPO the
/// policy's summed margin over the reference's (positive once the adapter prefers the user's
/// text more than the base does), for LN-DPO the same per token, for SimPO the per-token margin
/// less γ/β.
pub(super) fn backward(
    model: &LoraModel,
    pair: &EncodedPair,
    params: &PreferenceParams,
) -> Result<(f32, f64, GradStore), TrainError> {
    model.device().with_context(|| {
        let (chosen_nll, nc) = model.loss(&pair.chosen, Pass::Train)?;
        let (rejected_nll, nr) = model.loss(&pair.rejected, Pass::Train)?;
        let z = match params.objective {
            Objective::Dpo => {
                // log π(c) − log π(r) = −nll_c·n_c + nll_r·n_r
                let policy =
                    (rejected_nll.affine(nr as f64, 0.0)? - chosen_nll.affine(nc as f64, 0.0)?)?;
                policy.affine(params.beta, -params.beta * pair.reference_margin)?
            }
            Objective::Simpo => {
                // log π(c)/|c| − log π(r)/|r| = nll_r − nll_c (both are per-token means)
                (rejected_nll - chosen_nll)?.affine(params.beta, -params.gamma)?
            }
            Objective::LnDpo => (rejected_nll - chosen_nll)?
                .affine(params.beta, -params.beta * pair.reference_margin)?,
        };
        // −log σ(z) = log(1 + e^(−z)); z stays within a few units at DPO's β.
        let loss = z
            .neg()?
            .exp()?
            .affine(1.0, 1.0)?
            .log()?
            .affine(params.weight, 0.0)?;
        let grads = loss.backward()?;
        let gap = f64::from(z.to_scalar::<f32>()?) / params.beta;
        Ok((loss.to_scalar::<f32>()?, gap, grads))
    })
}
