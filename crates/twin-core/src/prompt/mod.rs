//! The prompt layer: what the chat model is asked and how its answers are constrained. Output
//! formats and their length targets ([`format`]), GBNF grammars and the JSON shapes they admit
//! ([`grammar`]), the versioned, overridable Jinja templates ([`templates`]), one
//! grammar-constrained step run end to end ([`structured`]), and word lists ([`words`]).
//!
//! Drafting, training (the dataset's back-translated requests) and evaluation all build on this
//! layer, and it builds on nothing of theirs: draft and train are siblings, and the text that
//! one writes for the model never has to be parsed back by another.

pub mod format;
pub mod grammar;
pub mod structured;
pub mod templates;
pub mod words;

use crate::engine::EngineError;

/// What can go wrong in the prompt layer.
#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    /// A prompt template is broken.
    #[error("prompt template {name}: {reason}")]
    Template {
        /// Template name or file.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// A grammar-constrained step produced text that does not parse (should not happen).
    #[error("the {step} step returned malformed JSON: {reason}")]
    Structured {
        /// The step.
        step: &'static str,
        /// The parse error.
        reason: String,
    },
    /// The chat model failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
}

crate::error::classify!(PromptError {
    kind: Self::Template { .. } => BadInput;
    inner: Engine;
});
