//! Rendering a conversation into the prompt text a chat model was trained on.
//!
//! llama.cpp recognises the common templates (ChatML, Llama 3, Gemma, …) by pattern and renders
//! them natively; that is tried first because it is what llama.cpp's own server does. A model
//! whose template llama.cpp does not know has its Jinja template rendered by minijinja (with
//! Python string methods, which most Hugging Face templates call). A model without any template
//! gets ChatML, llama.cpp's default.

use llama_cpp_2::model::{LlamaChatMessage, LlamaChatTemplate, LlamaModel};
use serde::{Deserialize, Serialize};

/// One message of a conversation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[ts(export)]
pub struct ChatMessage {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// The message text.
    pub content: String,
}

impl ChatMessage {
    /// A system message.
    pub fn system(content: impl Into<String>) -> Self {
        Self {
            role: "system".into(),
            content: content.into(),
        }
    }

    /// A user message.
    pub fn user(content: impl Into<String>) -> Self {
        Self {
            role: "user".into(),
            content: content.into(),
        }
    }

    /// An assistant message.
    pub fn assistant(content: impl Into<String>) -> Self {
        Self {
            role: "assistant".into(),
            content: content.into(),
        }
    }
}

/// How a model's prompts are rendered.
#[derive(Clone)]
pub(crate) enum TemplateKind {
    /// llama.cpp renders it natively.
    Native(LlamaChatTemplate),
    /// Rendered from the model's Jinja source by minijinja.
    Jinja(String),
}

impl std::fmt::Debug for TemplateKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.describe())
    }
}

impl TemplateKind {
    /// Choose the renderer for `model`, probing llama.cpp with a tiny conversation.
    pub(crate) fn for_model(model: &LlamaModel) -> Self {
        let template = match model.chat_template(None) {
            Ok(t) => t,
            Err(_) => match LlamaChatTemplate::new("chatml") {
                Ok(t) => return Self::Native(t),
                Err(_) => return Self::Jinja(CHATML.into()),
            },
        };
        let native_ok = LlamaChatMessage::new("user".into(), "hi".into())
            .map(|m| model.apply_chat_template(&template, &[m], true).is_ok())
            .unwrap_or(false);
        if native_ok {
            Self::Native(template)
        } else {
            Self::Jinja(template.to_string().unwrap_or_else(|_| CHATML.into()))
        }
    }

    /// The text of `messages`; with `add_generation_prompt` it ends where the assistant's reply
    /// begins, without it a finished conversation (a training example) is rendered.
    pub(crate) fn render(
        &self,
        model: &LlamaModel,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
    ) -> Result<String, String> {
        match self {
            Self::Native(t) => {
                let msgs = messages
                    .iter()
                    .map(|m| LlamaChatMessage::new(m.role.clone(), m.content.clone()))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| format!("a message contains a NUL byte: {e}"))?;
                model
                    .apply_chat_template(t, &msgs, add_generation_prompt)
                    .map_err(|e| format!("llama.cpp could not apply the chat template: {e}"))
            }
            Self::Jinja(source) => {
                let token = |t| {
                    String::from_utf8_lossy(&model.vocab().token_to_piece(t, true, None))
                        .into_owned()
                };
                render_jinja_with(
                    source,
                    messages,
                    &token(model.vocab().bos()),
                    &token(model.vocab().eos()),
                    add_generation_prompt,
                )
            }
        }
    }

    /// Short name for traces and `twin models list`.
    pub(crate) fn describe(&self) -> &'static str {
        match self {
            Self::Native(_) => "llama.cpp built-in",
            Self::Jinja(_) => "jinja (minijinja)",
        }
    }
}

/// Instructions a chat template may run per rendering (minijinja fuel).
const CHAT_TEMPLATE_FUEL: u64 = 20_000_000;

/// ChatML, the fallback for models without a template (as in llama.cpp).
const CHATML: &str = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

/// Render a Hugging Face chat template with minijinja, the way `transformers` does, ending
/// where the assistant's reply begins.
pub fn render_jinja(
    source: &str,
    messages: &[ChatMessage],
    bos_token: &str,
    eos_token: &str,
) -> Result<String, String> {
    render_jinja_with(source, messages, bos_token, eos_token, true)
}

fn render_jinja_with(
    source: &str,
    messages: &[ChatMessage],
    bos_token: &str,
    eos_token: &str,
    add_generation_prompt: bool,
) -> Result<String, String> {
    let mut env = minijinja::Environment::new();
    // The template comes from the model file: a crafted one must not loop for ever. Real chat
    // templates spend a few thousand instructions per message.
    env.set_fuel(Some(CHAT_TEMPLATE_FUEL));
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.add_function(
        "raise_exception",
        |msg: String| -> Result<String, minijinja::Error> {
            Err(minijinja::Error::new(
                minijinja::ErrorKind::InvalidOperation,
                msg,
            ))
        },
    );
    // transformers trims blocks this way; templates are written for it.
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.add_template("chat", source)
        .map_err(|e| format!("the model's chat template does not parse: {e}"))?;
    let template = env
        .get_template("chat")
        .map_err(|e| format!("the model's chat template does not parse: {e}"))?;
    template
        .render(minijinja::context! {
            messages => messages,
            add_generation_prompt => add_generation_prompt,
            bos_token => bos_token,
            eos_token => eos_token,
        })
        .map_err(|e| format!("the model's chat template failed: {e}"))
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_template_that_never_ends_runs_out_of_fuel() {
        let endless =
            "{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}";
        let started = std::time::Instant::now();
        let err = super::render_jinja(endless, &[], "", "").unwrap_err();
        assert!(err.contains("fuel"), "{err}");
        assert!(started.elapsed().as_secs() < 30, "{:?}", started.elapsed());
    }

    use super::*;

    #[test]
    fn chatml_renders_like_llama_cpp() {
        let out = render_jinja(
            CHATML,
            &[ChatMessage::system("Be brief."), ChatMessage::user("Hi")],
            "",
            "",
        )
        .unwrap();
        assert_eq!(
            out,
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn python_string_methods_work() {
        let out = render_jinja(
            "{% for m in messages %}{{ m.content.strip() | upper }}{% endfor %}",
            &[ChatMessage::user("  hi  ")],
            "",
            "",
        )
        .unwrap();
        assert_eq!(out, "HI");
    }
}
