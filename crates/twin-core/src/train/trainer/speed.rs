//! The speed of training steps on this machine, for the plan's ETA and `twin bench train`.

use super::*;

/// Training speed measured over a few steps (nothing is stored): what `twin bench train` shows.
#[derive(Clone, Debug)]
pub struct TrainSpeed {
    /// Where candle ran the steps.
    pub device: String,
    /// `general.architecture` of the base model.
    pub architecture: String,
    /// Parameters of the base model.
    pub parameters: u64,
    /// Trainable LoRA parameters.
    pub lora_parameters: u64,
    /// Seconds to load the f32 weights.
    pub load_seconds: f64,
    /// Tokens per second of each timed step, sorted.
    pub step_rates: Vec<f64>,
    /// All timed tokens over all timed seconds.
    pub overall_tokens_per_second: f64,
    /// Tokens one epoch computes per word of the user's writing it teaches.
    pub tokens_per_word: f64,
}

/// `steps` training steps on `dataset` after one untimed warm-up step; nothing is stored.
pub fn measure_speed(
    base_path: &Path,
    dataset: &Dataset,
    params: &TrainParams,
    steps: usize,
) -> Result<TrainSpeed, TrainError> {
    let prepared = prepare(base_path, dataset, params)?;
    let load_started = Instant::now();
    let device = training_device();
    let model = LoraModel::load(base_path, &params.lora, &device)?;
    let load_seconds = load_started.elapsed().as_secs_f64();
    let vars = model.lora_vars();
    let mut optimizer = AdamW::new(vars.clone(), params.optimizer.clone())?;
    let mut accumulator = Accumulator::new(vars.len());
    let mut step_rates = Vec::new();
    let (mut timed_tokens, mut timed_seconds) = (0usize, 0.0f64);
    // One warm-up step pays for first allocations; it is not counted.
    for (i, seq) in prepared.schedule.iter().take(steps + 1).enumerate() {
        let started = Instant::now();
        let (_, grads) = forward_backward(&model, seq)?;
        accumulator.add(&vars, &grads)?;
        optimizer.step(&accumulator.take_mean()?, params.optimizer.learning_rate)?;
        // GPU kernels run asynchronously: without waiting, a step's time would be its launches.
        device.synchronize()?;
        if i > 0 {
            let seconds = started.elapsed().as_secs_f64();
            step_rates.push(seq.len() as f64 / seconds);
            timed_tokens += seq.len();
            timed_seconds += seconds;
        }
    }
    step_rates.sort_by(f64::total_cmp);
    let words: f64 = dataset.record.stats["train_words"].as_f64().unwrap_or(0.0);
    let device = match &device {
        candle_core::Device::Cpu => format!(
            "CPU, {} threads",
            std::thread::available_parallelism().map_or(1, |n| n.get())
        ),
        candle_core::Device::Cuda(_) => "CUDA GPU 0".to_string(),
        candle_core::Device::Metal(_) => "Metal GPU".to_string(),
    };
    Ok(TrainSpeed {
        device,
        architecture: prepared.shape.architecture.clone(),
        parameters: prepared.shape.parameters(),
        lora_parameters: prepared.shape.lora_parameters(&params.lora),
        load_seconds,
        step_rates,
        // An epoch's time is the sum of its steps' times, so the estimate uses the timed steps'
        // tokens over their total time, not the median step.
        overall_tokens_per_second: timed_tokens as f64 / timed_seconds.max(1e-9),
        // What an epoch computes (packed, shared prompt prefixes once, replay examples
        // included) per word of the user's writing it teaches.
        tokens_per_word: prepared.tokens_per_epoch() as f64 / words.max(1.0),
    })
}
