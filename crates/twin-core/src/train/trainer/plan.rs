//! Before a run: the examples prepared for training, the memory it will take, and the plan
//! `twin train --dry-run` prints.

use super::*;

/// Everything derived from the dataset before training starts.
pub(super) struct Prepared {
    pub(super) shape: LlamaShape,
    pub(super) train: Vec<EncodedExample>,
    pub(super) test: Vec<EncodedExample>,
    pub(super) schedule: Vec<Sequence>,
    pub(super) sequences_per_epoch: usize,
    pub(super) steps: usize,
}

impl Prepared {
    /// Input tokens the first epoch's packed sequences compute.
    pub(super) fn tokens_per_epoch(&self) -> usize {
        self.schedule
            .iter()
            .take(self.sequences_per_epoch)
            .map(Sequence::len)
            .sum()
    }
}

impl TrainParams {
    /// Refuse settings no run should start with: a shell (or a page) may pass anything, and
    /// a rank of a million or a sequence of a billion tokens would exhaust memory before the
    /// first step instead of failing with a reason.
    pub fn validate(&self) -> Result<(), TrainError> {
        let bad = |what: String| Err(TrainError::Data(what));
        if !(1..=256).contains(&self.lora.rank) {
            return bad(format!(
                "LoRA rank {} is out of range (1 to 256)",
                self.lora.rank
            ));
        }
        if !(self.epochs.is_finite() && self.epochs > 0.0 && self.epochs <= 1000.0) {
            return bad(format!(
                "{} epochs is out of range (above 0, at most 1000)",
                self.epochs
            ));
        }
        if self.max_steps.is_some_and(|s| s == 0 || s > 10_000_000) {
            return bad("max steps must be between 1 and 10,000,000".into());
        }
        if !(16..=32_768).contains(&self.sequence_tokens) {
            return bad(format!(
                "sequence length {} tokens is out of range (16 to 32768)",
                self.sequence_tokens
            ));
        }
        if !(1..=1024).contains(&self.accumulation) {
            return bad(format!(
                "accumulation {} is out of range (1 to 1024)",
                self.accumulation
            ));
        }
        let lr = self.optimizer.learning_rate;
        if !(lr.is_finite() && lr > 0.0 && lr < 1.0) {
            return bad(format!(
                "learning rate {lr} is out of range (above 0, below 1)"
            ));
        }
        if !(0.0..1.0).contains(&self.warmup_fraction) {
            return bad(format!(
                "warm-up share {} is out of range (0 to below 1)",
                self.warmup_fraction
            ));
        }
        Ok(())
    }
}

pub(super) fn prepare(
    base_path: &Path,
    dataset: &Dataset,
    params: &TrainParams,
) -> Result<Prepared, TrainError> {
    params.validate()?;
    let shape = read_shape(base_path)?;
    let tokenizer = ChatTokenizer::load(base_path)?;
    let train_ex: Vec<&Example> = dataset.split(Split::Train).collect();
    let test_ex: Vec<&Example> = dataset
        .split(Split::Test)
        .filter(|e| e.kind == ExampleKind::User)
        .collect();
    if train_ex.is_empty() {
        return Err(TrainError::Data(format!(
            "dataset {} has no training examples",
            dataset.record.id
        )));
    }
    let train = encode_all(&tokenizer, &train_ex, params.sequence_tokens)?;
    let test = encode_all(&tokenizer, &test_ex, params.sequence_tokens)?;
    if train.is_empty() {
        return Err(TrainError::Data(format!(
            "no training example of dataset {} fits {} tokens with room for its reply",
            dataset.record.id, params.sequence_tokens
        )));
    }
    if test.is_empty() {
        return Err(TrainError::Data(format!(
            "dataset {} has no held-out examples to stop on; import more documents",
            dataset.record.id
        )));
    }
    let epochs = params.epochs.max(0.01);
    let mut schedule = Vec::new();
    let mut sequences_per_epoch = 0;
    for epoch in 0..epochs.ceil() as u64 {
        let refs: Vec<&EncodedExample> = train.iter().collect();
        let order = shuffled(&refs, params.lora.seed ^ epoch);
        let packed = pack(&order, params.sequence_tokens);
        if epoch == 0 {
            sequences_per_epoch = packed.len();
        }
        schedule.extend(packed);
    }
    let micro =
        ((sequences_per_epoch as f64 * epochs).round() as usize).clamp(1, schedule.len().max(1));
    schedule.truncate(micro);
    let accumulation = params.accumulation.max(1);
    let mut steps = micro.div_ceil(accumulation);
    if let Some(max) = params.max_steps {
        steps = steps.min(max.max(1));
    }
    Ok(Prepared {
        shape,
        train,
        test,
        schedule,
        sequences_per_epoch,
        steps,
    })
}

/// Peak memory estimate: f32 base weights, LoRA tensors with gradients and moments, and the
/// activations one packed sequence keeps for backpropagation.
pub(super) fn memory_estimate(shape: &LlamaShape, params: &TrainParams) -> u64 {
    let t = params.sequence_tokens as u64;
    let (d, f, h) = (
        shape.embedding as u64,
        shape.feed_forward as u64,
        shape.heads as u64,
    );
    let weights = shape.parameters() * 4;
    let lora = shape.lora_parameters(&params.lora) * 4 * 4;
    // Per token and layer the graph keeps ~8 model-width and 2 feed-forward-width tensors (the
    // fused kernels keep one output each, attention recomputes its weights when going
    // backward); one layer's attention weights exist at a time. Checked against `twin bench
    // train` on SmolLM2-135M: 512 tokens estimate 1.4 GiB, measured peak 1.37 GiB.
    let per_layer = t * (8 * d + 2 * f);
    let activations = (shape.layers as u64 * per_layer + h * t * t) * 4;
    // Logits and their gradient.
    let head = t * shape.vocab as u64 * 4 * 2;
    weights + lora + activations + head + (256 << 20)
}

/// The plan for training `dataset` on the model at `base_path`; with `measure`, one step is
/// timed on this machine for the ETA.
pub fn plan(
    base_path: &Path,
    dataset: &Dataset,
    params: &TrainParams,
    measure: bool,
) -> Result<TrainPlan, TrainError> {
    let prepared = prepare(base_path, dataset, params)?;
    let example_tokens_per_epoch: usize = prepared.train.iter().map(|e| e.tokens.len() - 1).sum();
    let tokens_per_epoch = prepared.tokens_per_epoch();
    let reply_tokens_per_epoch: usize = prepared
        .train
        .iter()
        .map(|e| e.tokens.len() - e.prompt_len)
        .sum();
    let planned_tokens: usize = prepared
        .schedule
        .iter()
        .take(prepared.steps * params.accumulation.max(1))
        .map(Sequence::len)
        .sum();
    let (measured, eta) = if measure {
        let device = training_device();
        let model = LoraModel::load(base_path, &params.lora, &device)?;
        let seq = &prepared.schedule[0];
        // The first step pays for allocations; the second is the one timed.
        let mut rate = 0.0;
        for _ in 0..2 {
            let started = Instant::now();
            forward_backward(&model, seq)?;
            rate = seq.len() as f64 / started.elapsed().as_secs_f64();
        }
        let evals = prepared
            .steps
            .div_ceil(eval_interval(params, &prepared).max(1))
            + 1;
        let eval_tokens: usize = prepared.test.iter().map(|e| e.tokens.len()).sum();
        // Evaluation runs forward only, about three times faster per token than a step.
        let eta = planned_tokens as f64 / rate + (evals * eval_tokens) as f64 / (3.0 * rate);
        (Some(rate), Some(eta))
    } else {
        (None, None)
    };
    Ok(TrainPlan {
        dataset: dataset.record.id.clone(),
        lora_parameters: prepared.shape.lora_parameters(&params.lora),
        memory_bytes: memory_estimate(&prepared.shape, params),
        shape: prepared.shape,
        train_examples: prepared.train.len(),
        test_examples: prepared.test.len(),
        tokens_per_epoch,
        example_tokens_per_epoch,
        reply_tokens_per_epoch,
        sequences_per_epoch: prepared.sequences_per_epoch,
        steps: prepared.steps,
        measured_tokens_per_second: measured,
        eta_seconds: eta,
    })
}

pub(super) fn eval_interval(params: &TrainParams, prepared: &Prepared) -> usize {
    if params.eval_every > 0 {
        return params.eval_every;
    }
    let per_epoch = prepared
        .sequences_per_epoch
        .div_ceil(params.accumulation.max(1));
    (per_epoch / 4).max(1)
}
