//! Token ids for training and scoring, produced by llama.cpp's own tokenizer and chat template,
//! so the ids a LoRA adapter is trained on are exactly the ids llama.cpp serves it with.
//!
//! [`ChatTokenizer`] loads only the vocabulary of a GGUF model (no weights): the trainer needs
//! ids, not inference. [`ChatModel`](super::ChatModel) encodes examples the same way through
//! [`encode_example`], for held-out scoring.

use super::backend::backend;
use super::chat_template::{ChatMessage, TemplateKind};
use super::EngineError;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// One conversation as token ids, with the place where the assistant's reply starts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncodedExample {
    /// Prompt and reply (with the template's end-of-turn marker), as token ids.
    pub tokens: Vec<u32>,
    /// Tokens before the reply: `tokens[prompt_len..]` is what the model should learn to write.
    pub prompt_len: usize,
}

/// Encode `messages` followed by the assistant reply `response`, with the model's chat template
/// exactly as generation renders it: the prompt is rendered with the generation prompt and
/// tokenized with BOS, the reply (and the template's closing marker) tokenized on its own, as
/// the model produces it one token at a time.
pub(crate) fn encode_example(
    model: &LlamaModel,
    template: &TemplateKind,
    messages: &[ChatMessage],
    response: &str,
) -> Result<EncodedExample, String> {
    let prompt = template.render(model, messages, true)?;
    let mut all = messages.to_vec();
    all.push(ChatMessage::assistant(response));
    let full = template.render(model, &all, false)?;
    let reply = full.strip_prefix(prompt.as_str()).ok_or_else(|| {
        "the chat template renders a finished conversation differently from a prompt, so \
         replies cannot be separated from prompts"
            .to_string()
    })?;
    let vocab = model.vocab();
    let mut tokens: Vec<u32> = vocab
        .tokenize(prompt.as_bytes(), true, true)
        .iter()
        .map(|t| t.0 as u32)
        .collect();
    let prompt_len = tokens.len();
    let mut reply_tokens: Vec<u32> = vocab
        .tokenize(reply.trim_end().as_bytes(), false, true)
        .iter()
        .map(|t| t.0 as u32)
        .collect();
    // Templates without an end-of-turn token in the text (or that trim it) still end the reply.
    let eot = [vocab.eot(), vocab.eos()]
        .into_iter()
        .find(|t| t.0 >= 0)
        .map(|t| t.0 as u32);
    if let Some(eot) = eot {
        if !reply_tokens
            .iter()
            .any(|&t| vocab.is_eog(LlamaToken(t as i32)))
        {
            reply_tokens.push(eot);
        }
    }
    tokens.extend(reply_tokens);
    Ok(EncodedExample { tokens, prompt_len })
}

/// A GGUF model's tokenizer and chat template, without its weights.
pub struct ChatTokenizer {
    model: LlamaModel,
    template: TemplateKind,
    path: PathBuf,
}

impl std::fmt::Debug for ChatTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTokenizer")
            .field("path", &self.path)
            .finish()
    }
}

impl ChatTokenizer {
    /// Load the vocabulary and chat template of the GGUF model at `path`.
    pub fn load(path: &Path) -> Result<Self, EngineError> {
        super::validate_gguf(path)?;
        let params = LlamaModelParams::default().with_vocab_only(true);
        let model = LlamaModel::load_from_file(backend()?, path, &params).map_err(|e| {
            EngineError::Load {
                path: path.to_path_buf(),
                reason: format!("llama.cpp could not read its vocabulary ({e})"),
            }
        })?;
        let template = TemplateKind::for_model(&model);
        Ok(Self {
            model,
            template,
            path: path.to_path_buf(),
        })
    }

    /// See [`encode_example`]: `messages` then the reply `response`, as token ids.
    pub fn encode_example(
        &self,
        messages: &[ChatMessage],
        response: &str,
    ) -> Result<EncodedExample, EngineError> {
        encode_example(&self.model, &self.template, messages, response).map_err(|reason| {
            EngineError::Template {
                path: self.path.clone(),
                reason,
            }
        })
    }

    /// Plain text as token ids (no BOS, special tokens parsed).
    pub fn encode(&self, text: &str) -> Vec<u32> {
        self.model
            .vocab()
            .tokenize(text.as_bytes(), false, true)
            .iter()
            .map(|t| t.0 as u32)
            .collect()
    }

    /// Token ids back to text.
    pub fn decode(&self, tokens: &[u32]) -> String {
        let vocab = self.model.vocab();
        let bytes: Vec<u8> = tokens
            .iter()
            .flat_map(|&t| vocab.token_to_piece(LlamaToken(t as i32), false, None))
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// Whether `token` ends a turn.
    pub fn is_end_of_turn(&self, token: u32) -> bool {
        self.model.vocab().is_eog(LlamaToken(token as i32))
    }

    /// Size of the vocabulary.
    pub fn vocab_size(&self) -> usize {
        self.model.n_vocab().max(0) as usize
    }
}
