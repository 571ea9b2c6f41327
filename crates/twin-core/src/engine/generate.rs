//! Text generation with a GGUF chat model: chat template, sampling, grammar-constrained output,
//! stop sequences, token streaming, cancellation and KV-cache reuse between requests.
//!
//! Like the embedder, a worker thread owns the llama.cpp context (it borrows the model). The
//! worker remembers which tokens sit in the KV cache, so a request that starts with the same
//! tokens as the previous one (the drafting chain's system prompt, style card and context are
//! shared by its steps) only evaluates the new tail.
//!
//! Cancellation is checked before every decode and, through llama.cpp's abort callback
//! (`ffi`), between the nodes of a running evaluation, so a cancel never waits for a long
//! prompt batch to finish and prompts are still evaluated in full-size batches.

use super::backend::{backend, default_gpu_layers};
use super::chat_template::{ChatMessage, TemplateKind};
use super::stream_text::{Fed, TextStream, WordCount};
use super::EngineError;
use crate::progress::CancelToken;
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::{LlamaLoraAdapter, LlamaModel};
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::logit_bias::LlamaLogitBias;
use llama_cpp_2::token::LlamaToken;
use serde::Serialize;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Instant;

/// Streamed text is handed to the caller at most this often (20 updates a second).
const FLUSH_SECONDS: f64 = 0.05;

/// How to run a chat model.
#[derive(Clone, Debug)]
pub struct ChatModelConfig {
    /// CPU threads for llama.cpp.
    pub threads: usize,
    /// Layers to offload to the GPU; `None` chooses from the free GPU memory (GPU builds only).
    pub gpu_layers: Option<u32>,
    /// Context window in tokens; 0 means the model's training context, capped at 8192.
    pub context_tokens: u32,
    /// Tokens evaluated per llama.cpp batch at most.
    pub batch_tokens: u32,
    /// A GGUF LoRA adapter to load next to the base model (applied per request at a scale).
    pub adapter: Option<PathBuf>,
    /// How traces name the model (the registry passes `name@sha256:…`); default: the file stem.
    pub id: Option<String>,
}

impl Default for ChatModelConfig {
    fn default() -> Self {
        Self {
            threads: super::default_threads(),
            gpu_layers: None,
            context_tokens: 0,
            batch_tokens: 512,
            adapter: None,
            id: None,
        }
    }
}

/// Sampling settings. `temperature <= 0` means greedy decoding.
#[derive(Clone, Debug, Serialize, serde::Deserialize, PartialEq)]
pub struct Sampling {
    /// Softmax temperature.
    pub temperature: f32,
    /// Keep the k most likely tokens (0 = off).
    pub top_k: i32,
    /// Nucleus sampling threshold (1 = off).
    pub top_p: f32,
    /// Drop tokens less likely than `min_p` × the best one (0 = off).
    pub min_p: f32,
    /// Repetition penalty over the last `repeat_last_n` tokens (1 = off).
    pub repeat_penalty: f32,
    /// Window of the repetition penalty.
    pub repeat_last_n: i32,
    /// DRY ("don't repeat yourself") penalty strength on tokens that would extend a sequence
    /// already generated (0 = off). Unlike the repetition penalty it leaves single common
    /// words alone and stops a small model's loops, which repeat whole phrases.
    #[serde(default)]
    pub dry_multiplier: f32,
    /// Repeats longer than this many tokens are penalised by DRY.
    #[serde(default = "default_dry_allowed_length")]
    pub dry_allowed_length: i32,
    /// Random seed; the same seed and prompt give the same text.
    pub seed: u32,
}

/// Tokens DRY looks back over: a drafting prompt with its retrieved writing and the reply.
const DRY_WINDOW: i32 = 8192;

fn default_dry_allowed_length() -> i32 {
    // Names and short phrases of the user's own ("Dovetail", "the whole shop") repeat freely;
    // at 3 tokens DRY garbled them ("Dovtail") once the prompt counted as written text.
    6
}

impl Default for Sampling {
    fn default() -> Self {
        Self {
            temperature: 0.7,
            top_k: 40,
            top_p: 0.95,
            min_p: 0.05,
            repeat_penalty: 1.1,
            repeat_last_n: 64,
            dry_multiplier: 0.0,
            dry_allowed_length: default_dry_allowed_length(),
            seed: 0x7717,
        }
    }
}

impl Sampling {
    /// What drafts sample with: the defaults and DRY, which stops the phrase loops small
    /// models fall into (measured with `twin bench quality`).
    pub fn drafting() -> Self {
        Self {
            dry_multiplier: 0.8,
            ..Self::default()
        }
    }

    /// Greedy decoding: always the most likely token.
    pub fn greedy() -> Self {
        Self {
            temperature: 0.0,
            ..Self::default()
        }
    }
}

/// One generation request.
#[derive(Clone, Debug, Default)]
pub struct GenerateRequest {
    /// The conversation; the reply continues it.
    pub messages: Vec<ChatMessage>,
    /// New tokens at most. 0 only evaluates the prompt into the KV cache (a prefill): the next
    /// request with the same prompt, adapter strength and nothing evaluated in between starts
    /// sampling at once.
    pub max_tokens: usize,
    /// The model may not end its turn before this many tokens (a length floor).
    pub min_tokens: usize,
    /// Nor before this many words of text: a floor in tokens alone lets hashtag- or
    /// number-heavy text, at several tokens a word, end short of a format's length.
    pub min_words: usize,
    /// Sampling settings.
    pub sampling: Sampling,
    /// Generation ends before the first of these strings; it is not part of the text.
    pub stop: Vec<String>,
    /// A GBNF grammar (root rule `root`) the output must follow.
    pub grammar: Option<String>,
    /// Strength of the loaded LoRA adapter (0 = base model only).
    pub adapter_scale: f32,
    /// The sampler sees the prompt as text already written, as llama.cpp's server does: DRY
    /// and the repetition penalty then treat continuing a passage of the prompt (the user's
    /// retrieved writing) as a repeat, so a draft paraphrases its sources instead of pasting
    /// them.
    pub penalize_prompt: bool,
}

/// Why generation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// The model ended its turn.
    EndOfText,
    /// A stop sequence appeared.
    StopSequence,
    /// `max_tokens` (or the context window) was reached.
    Length,
    /// The caller cancelled.
    Cancelled,
}

/// Timings and counts of one generation.
#[derive(Clone, Debug, Default, Serialize, serde::Deserialize, PartialEq)]
pub struct GenerationStats {
    /// Tokens in the prompt.
    pub prompt_tokens: usize,
    /// Prompt tokens found in the KV cache from the previous request (not evaluated again).
    pub reused_tokens: usize,
    /// Tokens generated.
    pub generated_tokens: usize,
    /// Time to evaluate the prompt, ms.
    pub prompt_ms: f64,
    /// Time from the request to the first generated token, ms.
    pub first_token_ms: f64,
    /// Time spent generating after the first token, ms.
    pub decode_ms: f64,
    /// Generated tokens per second after the first token.
    pub tokens_per_second: f64,
}

/// The result of one generation.
#[derive(Clone, Debug, Serialize)]
pub struct Generation {
    /// The generated text (without stop sequences).
    pub text: String,
    /// Why it ended.
    pub finish: FinishReason,
    /// Timings and counts.
    pub stats: GenerationStats,
}

/// What a loaded chat model is.
#[derive(Clone, Debug, Serialize)]
pub struct ChatModelInfo {
    /// The registry's id (`name@sha256:…`), else the file stem.
    pub name: String,
    /// The GGUF file.
    pub path: PathBuf,
    /// `general.architecture`.
    pub architecture: String,
    /// Parameter count.
    pub parameters: u64,
    /// Context window the model was trained with.
    pub context_train: u32,
    /// Context window in use.
    pub context: u32,
    /// How prompts are rendered.
    pub chat_template: String,
    /// Layers offloaded to the GPU.
    pub gpu_layers: u32,
    /// The LoRA adapter loaded with it, if any.
    pub adapter: Option<PathBuf>,
}

enum WorkerMsg {
    Piece(String),
    Done(Result<Generation, EngineError>),
}

enum Job {
    Generate(GenerateJob),
    Score(ScoreJob),
    /// Forget the KV cache (benchmarks measure cold prompts).
    ClearCache(mpsc::Sender<()>),
}

struct GenerateJob {
    prompt: Vec<LlamaToken>,
    request: GenerateRequest,
    cancel: CancelToken,
    out: mpsc::Sender<WorkerMsg>,
}

struct ScoreJob {
    tokens: Vec<LlamaToken>,
    from: usize,
    scale: f32,
    cancel: CancelToken,
    out: mpsc::Sender<Result<Scored, EngineError>>,
}

/// How well the model predicts a token sequence, position by position.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Scored {
    /// Negative log-likelihood (nats) of each scored token given the tokens before it.
    pub nll: Vec<f32>,
    /// The model's most likely token at each scored position.
    pub argmax: Vec<u32>,
}

impl Scored {
    /// Mean negative log-likelihood per token (nats); 0 for nothing scored.
    pub fn mean_nll(&self) -> f64 {
        if self.nll.is_empty() {
            return 0.0;
        }
        self.nll.iter().map(|&v| f64::from(v)).sum::<f64>() / self.nll.len() as f64
    }
}

/// A loaded chat model with its generation worker.
pub struct ChatModel {
    model: Arc<LlamaModel>,
    template: TemplateKind,
    info: ChatModelInfo,
    jobs: super::worker::Worker<Job>,
    /// The last prompt generated from and its tokens: a prepared draft's first step repeats its
    /// prefill's prompt, and tokenizing ~1,300 tokens again would be most of its first token's
    /// time (~2 µs a token).
    last_prompt: std::sync::Mutex<Option<(String, Vec<LlamaToken>)>>,
}

impl std::fmt::Debug for ChatModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatModel")
            .field("info", &self.info)
            .finish()
    }
}

impl ChatModel {
    /// Load the GGUF chat model at `path`. A damaged or foreign file gives an error naming it.
    pub fn load(path: &Path, config: &ChatModelConfig) -> Result<Self, EngineError> {
        let _span = tracing::info_span!("load_chat_model", path = %path.display()).entered();
        let header = super::validate_gguf(path)?;
        let backend = backend()?;
        let load_err = |reason: String| EngineError::Load {
            path: path.to_path_buf(),
            reason,
        };
        let mut params = std::pin::pin!(LlamaModelParams::default());
        let gpu_layers = match config.gpu_layers {
            Some(n) => {
                params.set(LlamaModelParams::default().with_n_gpu_layers(n));
                n
            }
            // On GPU builds llama.cpp chooses the layers (and the context it can afford) from the
            // free memory of each device, leaving a margin; CPU builds offload nothing.
            None if cfg!(any(feature = "cuda", feature = "metal")) => {
                fit_to_memory(params.as_mut(), path, config)
            }
            None => default_gpu_layers(),
        };
        let mut model = LlamaModel::load_from_file(backend, path, &params)
            .map_err(|e| load_err(format!("llama.cpp could not load it ({e})")))?;
        let arch = header.architecture.clone().unwrap_or_default();
        if model.meta_val_str(&format!("{arch}.pooling_type")).is_ok() {
            return Err(EngineError::WrongKind {
                path: path.to_path_buf(),
                reason: "this is an embedding model, not a chat model".into(),
            });
        }
        let adapter = match &config.adapter {
            Some(p) => Some(load_adapter(&mut model, p)?),
            None => None,
        };
        let context_train = model.n_ctx_train();
        let context = match config.context_tokens {
            0 => context_train.min(8192),
            n => n.min(context_train.max(n)),
        }
        .max(256);
        let template = TemplateKind::for_model(&model);
        let info = ChatModelInfo {
            name: config.id.clone().unwrap_or_else(|| {
                path.file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .or(header.name.clone())
                    .unwrap_or_default()
            }),
            path: path.to_path_buf(),
            architecture: arch,
            parameters: model.n_params(),
            context_train,
            context,
            chat_template: template.describe().into(),
            gpu_layers: gpu_layers.min(model.n_layer() + 1),
            adapter: config.adapter.clone(),
        };
        let model = Arc::new(model);
        let jobs = spawn_worker(Arc::clone(&model), config, context, adapter)?;
        Ok(Self {
            model,
            template,
            info,
            jobs,
            last_prompt: std::sync::Mutex::new(None),
        })
    }

    /// `text`'s tokens, with the special tokens of the chat template parsed (remembered for the
    /// last prompt).
    fn prompt_tokens(&self, text: String) -> Vec<LlamaToken> {
        let mut last = self.last_prompt.lock().unwrap_or_else(|e| e.into_inner());
        match last.as_ref() {
            Some((t, tokens)) if *t == text => tokens.clone(),
            _ => {
                let tokens = self.model.vocab().tokenize(text.as_bytes(), true, true);
                *last = Some((text, tokens.clone()));
                tokens
            }
        }
    }

    /// What this model is.
    pub fn info(&self) -> &ChatModelInfo {
        &self.info
    }

    /// The prompt text `messages` render to with this model's chat template.
    pub fn render(&self, messages: &[ChatMessage]) -> Result<String, EngineError> {
        self.template
            .render(&self.model, messages, true)
            .map_err(|reason| EngineError::Template {
                path: self.info.path.clone(),
                reason,
            })
    }

    /// The Jinja chat template stored in the GGUF, if any.
    pub fn template_source(&self) -> Option<String> {
        self.model
            .chat_template(None)
            .ok()
            .and_then(|t| t.to_string().ok())
    }

    /// Render `messages` with the model's Jinja template through minijinja, bypassing
    /// llama.cpp's built-in renderer (the fallback path, exposed so it can be compared).
    pub fn render_with_jinja(&self, messages: &[ChatMessage]) -> Result<String, EngineError> {
        let source = self
            .template_source()
            .ok_or_else(|| EngineError::Template {
                path: self.info.path.clone(),
                reason: "the model has no chat template".into(),
            })?;
        TemplateKind::Jinja(source)
            .render(&self.model, messages, true)
            .map_err(|reason| EngineError::Template {
                path: self.info.path.clone(),
                reason,
            })
    }

    /// Empty the KV cache, so the next prompt is evaluated in full.
    pub fn clear_cache(&self) -> Result<(), EngineError> {
        let (done, wait) = mpsc::channel();
        self.jobs.send(Job::ClearCache(done))?;
        wait.recv().map_err(|_| EngineError::WorkerGone)
    }

    /// `messages` followed by the reply `response` as token ids, encoded exactly as training
    /// encodes examples (see [`super::tokens::encode_example`]).
    pub fn encode_example(
        &self,
        messages: &[ChatMessage],
        response: &str,
    ) -> Result<super::tokens::EncodedExample, EngineError> {
        super::tokens::encode_example(&self.model, &self.template, messages, response).map_err(
            |reason| EngineError::Template {
                path: self.info.path.clone(),
                reason,
            },
        )
    }

    /// Score `tokens[from..]`: each token's negative log-likelihood given all tokens before it,
    /// computed by llama.cpp with the loaded adapter at `adapter_scale` (0 = base model).
    /// `from` must be at least 1 (the first token has nothing to be predicted from).
    pub fn score(
        &self,
        tokens: &[u32],
        from: usize,
        adapter_scale: f32,
        cancel: &CancelToken,
    ) -> Result<Scored, EngineError> {
        if from == 0 || from >= tokens.len() {
            return Err(EngineError::Runtime(format!(
                "nothing to score: {} tokens, scoring from {from}",
                tokens.len()
            )));
        }
        let (out, inbox) = mpsc::channel();
        self.jobs.send(Job::Score(ScoreJob {
            tokens: tokens.iter().map(|&t| LlamaToken(t as i32)).collect(),
            from,
            scale: adapter_scale,
            cancel: cancel.clone(),
            out,
        }))?;
        inbox.recv().map_err(|_| EngineError::WorkerGone)?
    }

    /// Tokens `text` takes in this model's vocabulary.
    pub fn count_tokens(&self, text: &str) -> usize {
        self.model
            .vocab()
            .tokenize(text.as_bytes(), false, false)
            .len()
    }

    /// Generate a reply, calling `on_text` with each piece of text as it is produced.
    ///
    /// Runs on the model's worker thread; this call blocks until generation ends, is cancelled
    /// through `cancel`, or fails.
    pub fn generate(
        &self,
        request: &GenerateRequest,
        cancel: &CancelToken,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<Generation, EngineError> {
        let prompt = self.prompt_tokens(self.render(&request.messages)?);
        if prompt.is_empty() {
            return Err(EngineError::Runtime("the prompt is empty".into()));
        }
        let (out, inbox) = mpsc::channel();
        self.jobs.send(Job::Generate(GenerateJob {
            prompt,
            request: request.clone(),
            cancel: cancel.clone(),
            out,
        }))?;
        for msg in inbox {
            match msg {
                WorkerMsg::Piece(text) => on_text(&text),
                WorkerMsg::Done(result) => return result,
            }
        }
        Err(EngineError::WorkerGone)
    }
}

fn load_adapter(model: &mut LlamaModel, path: &Path) -> Result<LlamaLoraAdapter, EngineError> {
    super::validate_gguf(path)?;
    model
        .lora_adapter_init(path)
        .map_err(|e| EngineError::Load {
            path: path.to_path_buf(),
            reason: format!("llama.cpp could not load this LoRA adapter for the model ({e})"),
        })
}

/// What the worker knows about the KV cache between requests.
struct KvState {
    /// Tokens whose keys and values are in the cache, in position order.
    cached: Vec<LlamaToken>,
    /// Adapter scale the cached tokens were computed with.
    scale: f32,
    /// Where the context's logits are, while they are still those of the last cached token
    /// (nothing evaluated since): a prompt already evaluated to its end then needs no evaluation.
    logits_at: Option<i32>,
}

fn spawn_worker(
    model: Arc<LlamaModel>,
    config: &ChatModelConfig,
    context: u32,
    mut adapter: Option<LlamaLoraAdapter>,
) -> Result<super::worker::Worker<Job>, EngineError> {
    let threads = super::llama_threads(config.threads);
    let batch_tokens = config.batch_tokens.clamp(8, context);
    super::worker::Worker::spawn(
        "twin-generate",
        move |inbox: mpsc::Receiver<Job>, ready_tx| {
            // Declared before the context, so it is dropped after it: the callback reads it.
            let abort = super::ffi::AbortSlot::default();
            let params = super::ffi::with_abort_callback(
                context_params(context, batch_tokens, threads),
                &abort,
            );
            let mut ctx = match backend().and_then(|b| {
                model.new_context(b, params).map_err(|e| {
                    EngineError::Runtime(format!("creating the generation context: {e}"))
                })
            }) {
                Ok(ctx) => ctx,
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            let _ = ready_tx.send(Ok(()));
            let mut batch = LlamaBatch::new(batch_tokens as usize, 1);
            let mut kv = KvState {
                cached: Vec::new(),
                scale: 0.0,
                logits_at: None,
            };
            for job in inbox {
                // Only a generation that ends cleanly leaves logits the next one may start from.
                let ready_logits = kv.logits_at.take();
                let job = match job {
                    Job::Generate(job) => job,
                    Job::ClearCache(done) => {
                        ctx.clear_kv_cache();
                        kv.cached.clear();
                        let _ = done.send(());
                        continue;
                    }
                    Job::Score(job) => {
                        let out = job.out.clone();
                        let result = score_job(
                            &model,
                            &mut ctx,
                            &mut batch,
                            batch_tokens as usize,
                            &mut kv,
                            adapter.as_mut(),
                            job,
                        );
                        if result.is_err() {
                            ctx.clear_kv_cache();
                            kv.cached.clear();
                        }
                        let _ = out.send(result);
                        continue;
                    }
                };
                let out = job.out.clone();
                // This clone keeps the flag alive until the callback is detached again.
                let cancel = job.cancel.clone();
                abort.watch(Some(cancel.flag()));
                let result = run_job(
                    &model,
                    &mut ctx,
                    &mut batch,
                    batch_tokens as usize,
                    &mut kv,
                    ready_logits,
                    adapter.as_mut(),
                    job,
                );
                abort.watch(None);
                drop(cancel);
                if result.is_err() {
                    // The cache may hold half a batch; start clean next time.
                    ctx.clear_kv_cache();
                    kv.cached.clear();
                }
                let _ = out.send(WorkerMsg::Done(result));
            }
        },
    )
}

/// Let llama.cpp fit the model into free GPU memory (1 GiB margin per device, context of at
/// least 2048 tokens); returns the layers it offloads. On failure everything is offloaded and
/// llama.cpp's own error surfaces at load time.
fn fit_to_memory(
    mut params: std::pin::Pin<&mut LlamaModelParams>,
    path: &Path,
    config: &ChatModelConfig,
) -> u32 {
    let Some(cpath) = path.to_str().and_then(|p| std::ffi::CString::new(p).ok()) else {
        return default_gpu_layers();
    };
    let mut cparams =
        LlamaContextParams::default().with_n_ctx(NonZeroU32::new(if config.context_tokens == 0 {
            8192
        } else {
            config.context_tokens
        }));
    let mut margins = vec![1usize << 30; super::ffi::max_devices()];
    match params.as_mut().fit_params(
        &cpath,
        &mut cparams,
        &mut margins,
        2048,
        llama_cpp_sys_2::GGML_LOG_LEVEL_ERROR,
    ) {
        // Negative means every layer (llama.cpp's default, which `fit_params` keeps when the
        // whole model fits).
        Ok(_) => u32::try_from(params.n_gpu_layers()).unwrap_or(u32::MAX),
        Err(e) => {
            tracing::warn!(path = %path.display(), "could not fit the model to GPU memory: {e}");
            default_gpu_layers()
        }
    }
}

/// The context settings shared by the generator and the bare benchmark loop.
fn context_params(context: u32, batch_tokens: u32, threads: i32) -> LlamaContextParams {
    LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(context))
        .with_n_batch(batch_tokens)
        .with_n_ubatch(batch_tokens)
        .with_n_threads(threads)
        .with_n_threads_batch(threads)
}

fn runtime(e: impl std::fmt::Display) -> EngineError {
    EngineError::Runtime(e.to_string())
}

/// The sampler chain for `request`; with `forbid_end`, end-of-turn tokens are masked so the
/// reply cannot stop before its length floor.
fn build_sampler(
    model: &LlamaModel,
    request: &GenerateRequest,
    forbid_end: bool,
) -> Result<LlamaSampler, EngineError> {
    let s = &request.sampling;
    let mut chain = Vec::new();
    if forbid_end {
        let vocab = model.vocab();
        let biases: Vec<LlamaLogitBias> = [vocab.eos(), vocab.eot()]
            .into_iter()
            .filter(|t| t.0 >= 0)
            .map(|t| LlamaLogitBias::new(t, f32::NEG_INFINITY))
            .collect();
        chain.push(LlamaSampler::logit_bias(model.n_vocab(), &biases));
    }
    if let Some(grammar) = &request.grammar {
        chain.push(
            LlamaSampler::grammar(model, grammar, "root")
                .map_err(|e| EngineError::Grammar(e.to_string()))?,
        );
    }
    if s.repeat_penalty != 1.0 && s.repeat_last_n > 0 {
        chain.push(LlamaSampler::penalties(
            model.n_vocab(),
            s.repeat_last_n,
            s.repeat_penalty,
            0.0,
            0.0,
        ));
    }
    if s.dry_multiplier > 0.0 {
        // llama.cpp's defaults: base 1.75, breakers at line ends, colons, quotes and bold
        // markers. The window is explicit: this build clamps -1 ("the context") to 0, which
        // turns DRY off.
        chain.push(LlamaSampler::dry(
            model,
            s.dry_multiplier,
            1.75,
            s.dry_allowed_length,
            DRY_WINDOW,
            ["\n", ":", "\"", "*"],
        ));
    }
    if s.temperature <= 0.0 {
        chain.push(LlamaSampler::greedy());
    } else {
        if s.top_k > 0 {
            chain.push(LlamaSampler::top_k(s.top_k));
        }
        if s.top_p < 1.0 {
            chain.push(LlamaSampler::top_p(s.top_p, 1));
        }
        if s.min_p > 0.0 {
            chain.push(LlamaSampler::min_p(s.min_p, 1));
        }
        chain.push(LlamaSampler::temp(s.temperature));
        chain.push(LlamaSampler::dist(s.seed));
    }
    Ok(LlamaSampler::chain_simple(chain))
}

/// Set the adapter's strength for the next evaluation. The adapter changes every key and
/// value, so a new scale invalidates the whole cache.
fn apply_adapter_scale(
    ctx: &mut LlamaContext<'_>,
    kv: &mut KvState,
    adapter: Option<&mut LlamaLoraAdapter>,
    requested: f32,
) -> Result<(), EngineError> {
    let scale = if adapter.is_some() { requested } else { 0.0 };
    if scale != kv.scale {
        if let Some(a) = adapter {
            if scale == 0.0 {
                ctx.lora_adapter_remove(a).map_err(runtime)?;
            } else {
                ctx.lora_adapter_set(a, scale).map_err(runtime)?;
            }
        }
        ctx.clear_kv_cache();
        kv.cached.clear();
        kv.scale = scale;
    }
    Ok(())
}

/// Evaluate a whole sequence with logits at every scored position (the cache is rebuilt: a
/// score is a fresh pass, not a continuation).
fn score_job(
    model: &LlamaModel,
    ctx: &mut LlamaContext<'_>,
    batch: &mut LlamaBatch,
    batch_tokens: usize,
    kv: &mut KvState,
    adapter: Option<&mut LlamaLoraAdapter>,
    job: ScoreJob,
) -> Result<Scored, EngineError> {
    let _span = tracing::info_span!("score", tokens = job.tokens.len()).entered();
    let n_ctx = ctx.n_ctx() as usize;
    if job.tokens.len() > n_ctx {
        return Err(EngineError::ContextFull {
            needed: job.tokens.len(),
            available: n_ctx,
        });
    }
    apply_adapter_scale(ctx, kv, adapter, job.scale)?;
    ctx.clear_kv_cache();
    kv.cached.clear();
    let n_vocab = usize::try_from(model.n_vocab()).unwrap_or(0);
    let tokens = &job.tokens;
    let mut scored = Scored::default();
    // Position i's logits predict token i + 1.
    let last_input = tokens.len() - 1;
    let mut pos = 0;
    while pos < last_input {
        if job.cancel.is_cancelled() {
            return Err(EngineError::Cancelled);
        }
        let end = (pos + batch_tokens).min(last_input);
        batch.clear();
        for (i, token) in tokens.iter().enumerate().take(end).skip(pos) {
            batch
                .add(*token, i as i32, &[0], i + 1 >= job.from)
                .map_err(runtime)?;
        }
        ctx.decode(batch).map_err(runtime)?;
        for i in pos.max(job.from - 1)..end {
            let logits = ctx.get_logits_ith((i - pos) as i32);
            let logits = &logits[..n_vocab.min(logits.len())];
            let target = tokens[i + 1].0 as usize;
            let (best, max) =
                logits
                    .iter()
                    .enumerate()
                    .fold(
                        (0, f32::NEG_INFINITY),
                        |acc, (j, &v)| {
                            if v > acc.1 {
                                (j, v)
                            } else {
                                acc
                            }
                        },
                    );
            let sum: f64 = logits.iter().map(|&v| f64::from(v - max).exp()).sum();
            let log_z = f64::from(max) + sum.ln();
            let target_logit = logits.get(target).copied().unwrap_or(f32::NEG_INFINITY);
            scored.nll.push((log_z - f64::from(target_logit)) as f32);
            scored.argmax.push(best as u32);
        }
        kv.cached.extend_from_slice(&tokens[pos..end]);
        pos = end;
    }
    Ok(scored)
}

/// One generation. `ready_logits`: where the previous generation left the logits of the last
/// cached token, if nothing was evaluated since.
#[allow(clippy::too_many_arguments)]
fn run_job(
    model: &LlamaModel,
    ctx: &mut LlamaContext<'_>,
    batch: &mut LlamaBatch,
    batch_tokens: usize,
    kv: &mut KvState,
    ready_logits: Option<i32>,
    adapter: Option<&mut LlamaLoraAdapter>,
    job: GenerateJob,
) -> Result<Generation, EngineError> {
    let _span = tracing::info_span!("generate", prompt_tokens = job.prompt.len()).entered();
    let started = Instant::now();
    let GenerateJob {
        prompt,
        request,
        cancel,
        out,
    } = job;
    let n_ctx = ctx.n_ctx() as usize;
    if prompt.len() + 1 >= n_ctx {
        return Err(EngineError::ContextFull {
            needed: prompt.len() + 1,
            available: n_ctx,
        });
    }
    let max_new = request.max_tokens.min(n_ctx - prompt.len() - 1);
    let mut sampler = build_sampler(model, &request, false)?;
    let mut floor_sampler = if request.min_tokens > 0 || request.min_words > 0 {
        Some(build_sampler(model, &request, true)?)
    } else {
        None
    };
    if request.penalize_prompt && request.grammar.is_none() {
        for &t in &prompt {
            sampler.accept(t);
            if let Some(floor) = floor_sampler.as_mut() {
                floor.accept(t);
            }
        }
    }

    apply_adapter_scale(ctx, kv, adapter, request.adapter_scale)?;

    // Keep the longest shared prefix; at least one prompt token is evaluated for fresh logits,
    // unless the cache holds exactly this prompt with its last logits (a prefill, see
    // `max_tokens: 0`), which is then sampled from as it stands.
    let shared = kv
        .cached
        .iter()
        .zip(&prompt)
        .take_while(|(a, b)| a == b)
        .count();
    let ready_logits = ready_logits.filter(|_| shared == prompt.len() && shared == kv.cached.len());
    let mut common = if ready_logits.is_some() {
        shared
    } else {
        shared.min(prompt.len() - 1)
    };
    // With ready logits the cache holds exactly the prompt: nothing to remove.
    if ready_logits.is_none()
        && !ctx
            .clear_kv_cache_seq(Some(0), u32::try_from(common).ok(), None)
            .unwrap_or(false)
    {
        ctx.clear_kv_cache();
        common = 0;
    }
    kv.cached.truncate(common);

    let mut stats = GenerationStats {
        prompt_tokens: prompt.len(),
        reused_tokens: common,
        ..Default::default()
    };
    let cancelled = |stats: GenerationStats, text: String| {
        Ok(Generation {
            text,
            finish: FinishReason::Cancelled,
            stats,
        })
    };

    let mut pos = common;
    while pos < prompt.len() {
        if cancel.is_cancelled() {
            return cancelled(stats, String::new());
        }
        let end = (pos + batch_tokens).min(prompt.len());
        batch.clear();
        for (i, token) in prompt.iter().enumerate().take(end).skip(pos) {
            batch
                .add(*token, i as i32, &[0], i + 1 == prompt.len())
                .map_err(runtime)?;
        }
        if let Err(e) = ctx.decode(batch) {
            if cancel.is_cancelled() {
                // Aborted between two graph nodes: the cache may hold part of the batch.
                ctx.clear_kv_cache();
                kv.cached.clear();
                return cancelled(stats, String::new());
            }
            return Err(runtime(e));
        }
        kv.cached.extend_from_slice(&prompt[pos..end]);
        pos = end;
    }
    stats.prompt_ms = started.elapsed().as_secs_f64() * 1e3;

    let vocab = model.vocab();
    let mut text = TextStream::new(&request.stop);
    let mut logits_at = ready_logits.unwrap_or(batch.n_tokens() - 1);
    let mut finish = FinishReason::Length;
    let mut first_token_at: Option<Instant> = None;
    let mut pending = String::new();
    let mut sent_any = false;
    let mut last_flush = Instant::now();
    let mut words = WordCount::default();
    while stats.generated_tokens < max_new {
        if cancel.is_cancelled() {
            finish = FinishReason::Cancelled;
            break;
        }
        let token = match floor_sampler.as_mut() {
            Some(floor)
                if stats.generated_tokens < request.min_tokens
                    || words.words < request.min_words =>
            {
                let t = floor.sample(ctx, logits_at);
                // Keep the main chain's grammar and penalty history in step.
                sampler.accept(t);
                t
            }
            _ => sampler.sample(ctx, logits_at),
        };
        if first_token_at.is_none() {
            first_token_at = Some(Instant::now());
            stats.first_token_ms = started.elapsed().as_secs_f64() * 1e3;
        }
        if vocab.is_eog(token) {
            finish = FinishReason::EndOfText;
            break;
        }
        stats.generated_tokens += 1;
        match text.feed(&vocab.token_to_piece(token, false, None)) {
            Fed::Text(piece) => {
                words.feed(&piece);
                pending.push_str(&piece);
                // The first piece goes out at once (time to first token); later ones at most
                // every FLUSH_SECONDS: on small machines every wake-up of the receiving thread
                // competes with llama.cpp's spinning OpenMP workers for a core.
                if !pending.is_empty()
                    && (!sent_any || last_flush.elapsed().as_secs_f64() >= FLUSH_SECONDS)
                {
                    let _ = out.send(WorkerMsg::Piece(std::mem::take(&mut pending)));
                    sent_any = true;
                    last_flush = Instant::now();
                }
            }
            Fed::Stopped(piece) => {
                pending.push_str(&piece);
                finish = FinishReason::StopSequence;
                break;
            }
        }
        if stats.generated_tokens == max_new {
            break;
        }
        batch.clear();
        batch
            .add(token, kv.cached.len() as i32, &[0], true)
            .map_err(runtime)?;
        if let Err(e) = ctx.decode(batch) {
            if cancel.is_cancelled() {
                ctx.clear_kv_cache();
                kv.cached.clear();
                finish = FinishReason::Cancelled;
                break;
            }
            return Err(runtime(e));
        }
        kv.cached.push(token);
        logits_at = 0;
    }
    if finish != FinishReason::StopSequence {
        pending.push_str(&text.finish());
    }
    if !pending.is_empty() {
        let _ = out.send(WorkerMsg::Piece(pending));
    }
    if let Some(first) = first_token_at {
        stats.decode_ms = first.elapsed().as_secs_f64() * 1e3;
        if stats.generated_tokens > 1 && stats.decode_ms > 0.0 {
            stats.tokens_per_second = (stats.generated_tokens - 1) as f64 / (stats.decode_ms / 1e3);
        }
    }
    if !kv.cached.is_empty() {
        // Every way out of the loop above leaves the last decode's logits at `logits_at`, and
        // they belong to the last cached token (a sampled token that ended the loop was not
        // evaluated, so it is not cached either).
        kv.logits_at = Some(logits_at);
    }
    if finish == FinishReason::Cancelled {
        return cancelled(stats, text.text().to_string());
    }
    Ok(Generation {
        text: text.text().to_string(),
        finish,
        stats,
    })
}

/// Timings of [`bare_decode`].
#[derive(Clone, Debug, Serialize)]
pub struct BareDecode {
    /// Prompt tokens evaluated.
    pub prompt_tokens: usize,
    /// Prompt evaluation time, ms.
    pub prompt_ms: f64,
    /// Tokens generated.
    pub generated_tokens: usize,
    /// Generated tokens per second.
    pub tokens_per_second: f64,
}

/// The baseline for `twin bench draft`: llama.cpp's plain decode loop (greedy sampling, no
/// worker thread, channel, text streaming or stop detection) on `prompt`, for exactly
/// `n_tokens` tokens, with the same threads and context as a [`ChatModel`] would use.
pub fn bare_decode(
    path: &Path,
    prompt: &str,
    n_tokens: usize,
    config: &ChatModelConfig,
) -> Result<BareDecode, EngineError> {
    super::validate_gguf(path)?;
    let backend = backend()?;
    let gpu_layers = config.gpu_layers.unwrap_or_else(default_gpu_layers);
    let model = LlamaModel::load_from_file(
        backend,
        path,
        &LlamaModelParams::default().with_n_gpu_layers(gpu_layers),
    )
    .map_err(|e| EngineError::Load {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let context = match config.context_tokens {
        0 => model.n_ctx_train().min(8192),
        n => n,
    };
    let threads = super::llama_threads(config.threads);
    let batch_tokens = config.batch_tokens.clamp(8, context);
    let params = context_params(context, batch_tokens, threads);
    let mut ctx = model.new_context(backend, params).map_err(runtime)?;
    let tokens = model.vocab().tokenize(prompt.as_bytes(), true, true);
    let mut batch = LlamaBatch::new(batch_tokens as usize, 1);
    let started = Instant::now();
    for (start, slice) in tokens.chunks(batch_tokens as usize).enumerate() {
        batch.clear();
        for (i, t) in slice.iter().enumerate() {
            let pos = start * batch_tokens as usize + i;
            batch
                .add(*t, pos as i32, &[0], pos + 1 == tokens.len())
                .map_err(runtime)?;
        }
        ctx.decode(&mut batch).map_err(runtime)?;
    }
    let prompt_ms = started.elapsed().as_secs_f64() * 1e3;
    let mut sampler = LlamaSampler::greedy();
    let mut logits_at = batch.n_tokens() - 1;
    let started = Instant::now();
    for pos in tokens.len()..tokens.len() + n_tokens {
        let token = sampler.sample(&ctx, logits_at);
        batch.clear();
        batch.add(token, pos as i32, &[0], true).map_err(runtime)?;
        ctx.decode(&mut batch).map_err(runtime)?;
        logits_at = 0;
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(BareDecode {
        prompt_tokens: tokens.len(),
        prompt_ms,
        generated_tokens: n_tokens,
        tokens_per_second: n_tokens as f64 / seconds.max(1e-9),
    })
}
