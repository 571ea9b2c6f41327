//! One grammar-constrained step: a template rendered, answered by the base model under a GBNF
//! grammar, parsed into a typed value. The drafting chain's self-query, expansion and plan
//! steps, the dataset's back-translated requests and the evaluation's judge all go through the
//! same request and parser.

use super::templates::Templates;
use super::PromptError;
use crate::engine::{ChatMessage, ChatModel, GenerateRequest, Sampling};
use crate::progress::CancelToken;

/// Greedy, grammar-constrained, base model only: structured steps should be exact, not
/// creative, and the adapter is trained on the user's prose, not on JSON.
pub fn request(grammar: String, max_tokens: usize) -> GenerateRequest {
    GenerateRequest {
        max_tokens,
        sampling: Sampling::greedy(),
        grammar: Some(grammar),
        adapter_scale: 0.0,
        ..Default::default()
    }
}

/// The answer of `step` parsed into `T`.
pub fn parse<T: serde::de::DeserializeOwned>(
    step: &'static str,
    text: &str,
) -> Result<T, PromptError> {
    serde_json::from_str(text).map_err(|e| PromptError::Structured {
        step,
        reason: format!("{e}: {text}"),
    })
}

/// Run one grammar-constrained step outside a draft: `template` rendered with `context`,
/// answered under `grammar`, parsed into `T`.
pub fn step<T: serde::de::DeserializeOwned>(
    model: &ChatModel,
    templates: &Templates,
    step: &'static str,
    template: &str,
    context: minijinja::Value,
    grammar: String,
    max_tokens: usize,
) -> Result<T, PromptError> {
    step_sampled(
        model,
        templates,
        (step, template),
        context,
        grammar,
        max_tokens,
        Sampling::greedy(),
    )
}

/// [`step`] with its own sampling: a second try at a step whose greedy answer was refused
/// needs a different answer, not the same one again.
pub fn step_sampled<T: serde::de::DeserializeOwned>(
    model: &ChatModel,
    templates: &Templates,
    (step, template): (&'static str, &str),
    context: minijinja::Value,
    grammar: String,
    max_tokens: usize,
    sampling: Sampling,
) -> Result<T, PromptError> {
    let request = GenerateRequest {
        messages: vec![
            ChatMessage::system(templates.render("json_system", minijinja::context! {})?),
            ChatMessage::user(templates.render(template, context)?),
        ],
        sampling,
        ..request(grammar, max_tokens)
    };
    let generation = model.generate(&request, &CancelToken::new(), &mut |_| {})?;
    parse(step, generation.text.trim())
}
