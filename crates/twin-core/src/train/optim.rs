//! AdamW over the LoRA tensors, with a warm-up + cosine learning-rate schedule and gradient
//! clipping.
//!
//! Why not `candle_nn::AdamW`: its moment estimates are private, so a checkpoint could not hold
//! them and a resumed run would restart the optimizer cold. The update itself is a few lines.

use super::TrainError;
use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};
use std::collections::HashMap;

/// Optimizer settings.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AdamWConfig {
    /// Peak learning rate.
    pub learning_rate: f64,
    /// First-moment decay.
    pub beta1: f64,
    /// Second-moment decay.
    pub beta2: f64,
    /// Numerical floor of the denominator.
    pub eps: f64,
    /// Decoupled weight decay.
    pub weight_decay: f64,
    /// Gradients are scaled down when their global norm exceeds this (0 = off).
    pub clip_norm: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        Self {
            learning_rate: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            clip_norm: 1.0,
        }
    }
}

/// Learning rate at `step` (0-based) of `total`: linear warm-up over `warmup` steps, then cosine
/// decay to a tenth of the peak.
pub fn learning_rate(peak: f64, step: usize, warmup: usize, total: usize) -> f64 {
    if step < warmup {
        return peak * (step + 1) as f64 / warmup as f64;
    }
    let span = total.saturating_sub(warmup).max(1);
    let progress = ((step - warmup) as f64 / span as f64).min(1.0);
    let floor = peak * 0.1;
    floor + (peak - floor) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
}

/// AdamW state for a named set of variables.
pub struct AdamW {
    config: AdamWConfig,
    vars: Vec<(String, Var)>,
    first: Vec<Tensor>,
    second: Vec<Tensor>,
    /// Updates applied so far (for bias correction).
    pub steps: usize,
}

impl AdamW {
    /// Fresh state for `vars`.
    pub fn new(vars: Vec<(String, Var)>, config: AdamWConfig) -> Result<Self, TrainError> {
        let first = vars
            .iter()
            .map(|(_, v)| v.as_tensor().zeros_like())
            .collect::<Result<Vec<_>, _>>()?;
        let second = first.clone();
        Ok(Self {
            config,
            vars,
            first,
            second,
            steps: 0,
        })
    }

    /// The variables being optimized.
    pub fn vars(&self) -> &[(String, Var)] {
        &self.vars
    }

    /// Apply one update with `grads` (already averaged over accumulation steps) at `lr`.
    /// Returns the gradient's global norm before clipping.
    pub fn step(&mut self, grads: &[Tensor], lr: f64) -> Result<f64, TrainError> {
        let norm = grads
            .iter()
            .map(|g| g.sqr()?.sum_all()?.to_scalar::<f32>())
            .collect::<Result<Vec<f32>, _>>()?
            .iter()
            .map(|&v| f64::from(v))
            .sum::<f64>()
            .sqrt();
        let clip = if self.config.clip_norm > 0.0 && norm > self.config.clip_norm {
            self.config.clip_norm / norm
        } else {
            1.0
        };
        self.steps += 1;
        let c = &self.config;
        let t = self.steps as i32;
        let correct1 = 1.0 - c.beta1.powi(t);
        let correct2 = 1.0 - c.beta2.powi(t);
        for (i, g) in grads.iter().enumerate() {
            let g = (g * clip)?;
            let m = ((&self.first[i] * c.beta1)? + (&g * (1.0 - c.beta1))?)?;
            let v = ((&self.second[i] * c.beta2)? + (g.sqr()? * (1.0 - c.beta2))?)?;
            let update = ((&m / correct1)? / ((&v / correct2)?.sqrt()? + c.eps)?)?;
            let var = &self.vars[i].1;
            let decayed = (var.as_tensor() * (1.0 - lr * c.weight_decay))?;
            var.set(&(decayed - (update * lr)?)?)?;
            self.first[i] = m;
            self.second[i] = v;
        }
        Ok(norm)
    }

    /// Moment estimates by name (`<var>.m`, `<var>.v`), for a checkpoint.
    pub fn state(&self) -> HashMap<String, Tensor> {
        let mut out = HashMap::new();
        for (i, (name, _)) in self.vars.iter().enumerate() {
            out.insert(format!("{name}.m"), self.first[i].clone());
            out.insert(format!("{name}.v"), self.second[i].clone());
        }
        out
    }

    /// Restore moment estimates saved by [`AdamW::state`].
    pub fn restore(
        &mut self,
        state: &HashMap<String, Tensor>,
        steps: usize,
    ) -> Result<(), TrainError> {
        for (i, (name, _)) in self.vars.iter().enumerate() {
            let get = |suffix: &str| {
                state
                    .get(&format!("{name}.{suffix}"))
                    .cloned()
                    .ok_or_else(|| {
                        TrainError::Checkpoint(format!("optimizer state for {name} is missing"))
                    })
            };
            self.first[i] = get("m")?;
            self.second[i] = get("v")?;
        }
        self.steps = steps;
        Ok(())
    }
}

/// Sum of gradients over accumulation steps, per variable, in the optimizer's order.
pub struct Accumulator {
    sums: Vec<Option<Tensor>>,
    /// Micro-batches added since the last reset.
    pub count: usize,
}

impl Accumulator {
    /// Empty sums for `n` variables.
    pub fn new(n: usize) -> Self {
        Self {
            sums: vec![None; n],
            count: 0,
        }
    }

    /// Add the gradients of one backward pass. A variable without a gradient means the graph
    /// was cut (a fused op without backward): that is a bug, reported rather than skipped.
    pub fn add(&mut self, vars: &[(String, Var)], grads: &GradStore) -> Result<(), TrainError> {
        for (i, (name, var)) in vars.iter().enumerate() {
            let g = grads.get(var.as_tensor()).ok_or_else(|| {
                TrainError::Data(format!("no gradient reached {name}: the graph is cut"))
            })?;
            self.sums[i] = Some(match self.sums[i].take() {
                Some(s) => (s + g)?,
                None => g.clone(),
            });
        }
        self.count += 1;
        Ok(())
    }

    /// Add the gradients of a term computed once per step rather than per micro-batch (the
    /// preference term): scaled so that it counts in full in [`Accumulator::take_mean`].
    pub fn add_whole(
        &mut self,
        vars: &[(String, Var)],
        grads: &GradStore,
    ) -> Result<(), TrainError> {
        let n = self.count.max(1) as f64;
        for (i, (name, var)) in vars.iter().enumerate() {
            let g = grads.get(var.as_tensor()).ok_or_else(|| {
                TrainError::Data(format!("no gradient reached {name}: the graph is cut"))
            })?;
            let g = (g * n)?;
            self.sums[i] = Some(match self.sums[i].take() {
                Some(s) => (s + g)?,
                None => g,
            });
        }
        Ok(())
    }

    /// The mean gradients, leaving the accumulator empty.
    pub fn take_mean(&mut self) -> Result<Vec<Tensor>, TrainError> {
        let n = self.count.max(1) as f64;
        let out = self
            .sums
            .iter_mut()
            .map(|s| {
                s.take()
                    .ok_or_else(|| TrainError::Data("no gradients were accumulated".into()))
                    .and_then(|t| Ok((t / n)?))
            })
            .collect();
        self.count = 0;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_warms_up_then_decays_to_a_tenth() {
        assert!((learning_rate(1.0, 0, 4, 20) - 0.25).abs() < 1e-9);
        assert!((learning_rate(1.0, 3, 4, 20) - 1.0).abs() < 1e-9);
        assert!((learning_rate(1.0, 4, 4, 20) - 1.0).abs() < 1e-9);
        assert!((learning_rate(1.0, 20, 4, 20) - 0.1).abs() < 1e-9);
        let mid = learning_rate(1.0, 12, 4, 20);
        assert!(mid > 0.5 && mid < 0.6, "{mid}");
    }

    #[test]
    fn adamw_moves_a_parameter_downhill() {
        let dev = candle_core::Device::Cpu;
        let x = Var::new(&[3.0f32], &dev).unwrap();
        let mut opt = AdamW::new(vec![("x".into(), x.clone())], AdamWConfig::default()).unwrap();
        for _ in 0..200 {
            let loss = x.as_tensor().sqr().unwrap().sum_all().unwrap();
            let grads = loss.backward().unwrap();
            let mut acc = Accumulator::new(1);
            acc.add(opt.vars(), &grads).unwrap();
            opt.step(&acc.take_mean().unwrap(), 0.05).unwrap();
        }
        let v = x.as_tensor().to_vec1::<f32>().unwrap()[0];
        assert!(v.abs() < 0.5, "x = {v}");
    }
}
