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

mod bare;
mod jobs;
mod prompt_cache;
pub use bare::*;
use jobs::*;

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
    /// A folder where requests that ask for it (`GenerateRequest::cache_prompt`) keep their
    /// evaluated prompt for the next process (see `prompt_cache`); `None`: nothing is kept.
    pub prompt_cache: Option<PathBuf>,
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
            prompt_cache: None,
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
    /// Keep this prompt's evaluation on disk for later processes and start from the closest
    /// one kept there, when the model has a `prompt_cache` folder. For prompts whose head
    /// recurs (a format's instructions, style card and exemplars), not for one-off requests.
    pub cache_prompt: bool,
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
    /// Of those, tokens loaded from the prompt cache on disk (a fresh process's head start).
    #[serde(default)]
    pub from_disk_tokens: usize,
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
        let cache = config
            .prompt_cache
            .as_deref()
            .map(|dir| prompt_cache::PromptCache::new(dir, path, config.adapter.as_deref()));
        let jobs = spawn_worker(Arc::clone(&model), config, context, adapter, cache)?;
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
