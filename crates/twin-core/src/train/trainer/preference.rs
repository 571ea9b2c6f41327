//! The preference term (DPO) trained beside the usual next-token loss: for a pair of replies to
//! one prompt, the user's text (`chosen`) and a model's draft (`rejected`), it raises the
//! adapter's log-probability of the user's text relative to the draft, measured against the
//! reference model. With LoRA the reference is the same model with the adapter off
//! (`Pass::Base`), so no second copy is loaded; its log-probabilities are computed once.
//!
//! loss = w · −log σ(β · [(log π(c) − log π(r)) − (log π_ref(c) − log π_ref(r))]),
//! log-probabilities summed over each reply's tokens (Rafailov et al., 2023).

use super::super::llama::{LoraModel, Pass, Sequence};
use super::super::preferences::PreferencePair;
use super::super::TrainError;
use crate::engine::ChatTokenizer;
use candle_core::backprop::GradStore;
use serde::{Deserialize, Serialize};

/// How the preference term is weighted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PreferenceParams {
    /// DPO's β: how far from the reference the adapter may move for a preference.
    pub beta: f64,
    /// The term's weight against the next-token loss.
    pub weight: f64,
}

impl Default for PreferenceParams {
    fn default() -> Self {
        Self {
            beta: 0.1,
            weight: 1.0,
        }
    }
}

/// One pair ready to train on: each reply in a sequence of its own, and the reference margin.
pub(super) struct EncodedPair {
    chosen: Sequence,
    rejected: Sequence,
    /// log π_ref(chosen) − log π_ref(rejected), summed over reply tokens.
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

/// Summed log-probability of a sequence's reply tokens.
fn log_prob(model: &LoraModel, s: &Sequence, pass: Pass) -> Result<f64, TrainError> {
    let (mean_nll, n) = model.loss(s, pass)?;
    Ok(-f64::from(mean_nll.to_scalar::<f32>()?) * n as f64)
}

/// Encode `pairs` for `model` (cut to `max_tokens`; a pair whose reply does not fit is left
/// out) and compute their reference margins with the adapter off.
pub(super) fn encode_pairs(
    model: &LoraModel,
    tokenizer: &ChatTokenizer,
    pairs: &[PreferencePair],
    max_tokens: usize,
) -> Result<Vec<EncodedPair>, TrainError> {
    let mut out = Vec::new();
    for pair in pairs {
        let (Some(chosen), Some(rejected)) = (
            sequence(tokenizer, pair, &pair.chosen, max_tokens)?,
            sequence(tokenizer, pair, &pair.rejected, max_tokens)?,
        ) else {
            continue;
        };
        let reference_margin = model.device().with_context(|| {
            Ok::<_, TrainError>(
                log_prob(model, &chosen, Pass::Base)? - log_prob(model, &rejected, Pass::Base)?,
            )
        })?;
        out.push(EncodedPair {
            chosen,
            rejected,
            reference_margin,
        });
    }
    Ok(out)
}

/// The preference term on `pair` and its gradients; also the policy's margin over the
/// reference's (positive once the adapter prefers the user's text more than the base does).
pub(super) fn backward(
    model: &LoraModel,
    pair: &EncodedPair,
    params: &PreferenceParams,
) -> Result<(f32, f64, GradStore), TrainError> {
    model.device().with_context(|| {
        let (chosen_nll, nc) = model.loss(&pair.chosen, Pass::Train)?;
        let (rejected_nll, nr) = model.loss(&pair.rejected, Pass::Train)?;
        // log π(c) − log π(r) = −nll_c·n_c + nll_r·n_r
        let policy = (rejected_nll.affine(nr as f64, 0.0)? - chosen_nll.affine(nc as f64, 0.0)?)?;
        let z = policy.affine(params.beta, -params.beta * pair.reference_margin)?;
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
