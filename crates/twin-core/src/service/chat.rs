//! Which chat model and adapter a command runs, and the model kept loaded between drafts.

use super::{lock, Settings, Twin};
use crate::engine::{ChatModel, ChatModelConfig};
use crate::error::TwinError;
use crate::library::Library;
use crate::models;
use crate::store::ModelRecord;
use crate::train::adapters::{self, AdapterPick, ChosenAdapter};
use std::path::PathBuf;
use std::sync::Arc;

/// Which chat model to run and how; every field left at its default follows the library's
/// active model, the adapter in use and the user's settings.
#[derive(Clone, Debug, Default)]
pub struct ModelChoice {
    /// A registered model's id, name or path; `None`: the active chat model.
    pub model: Option<String>,
    /// Context window in tokens (0: the model's, capped; see [`ChatModelConfig`]).
    pub context_tokens: u32,
    /// GPU layers over the setting (`None`: the setting).
    pub gpu_layers: Option<u32>,
    /// The voice adapter.
    pub adapter: AdapterPick,
}

impl ModelChoice {
    /// How to load a model with this choice and `settings`.
    pub(super) fn config(&self, settings: &Settings) -> ChatModelConfig {
        ChatModelConfig {
            context_tokens: self.context_tokens,
            gpu_layers: self.gpu_layers.or(settings.gpu_layers),
            ..settings.chat_config()
        }
    }
}

/// A chat model loaded for a command, with the adapter it was loaded with.
#[derive(Clone)]
pub struct DraftingModel {
    /// The registered model.
    pub record: ModelRecord,
    /// The voice adapter, if one was loaded.
    pub adapter: Option<ChosenAdapter>,
    /// The loaded model.
    pub model: Arc<ChatModel>,
}

/// What makes two loads the same: model, adapter file, GPU layers, threads, context.
type ChatKey = (i64, Option<PathBuf>, Option<u32>, usize, u32);

/// The chat model kept loaded between drafts (loading takes a second or more).
pub(super) struct LoadedChat {
    key: ChatKey,
    model: Arc<ChatModel>,
}

impl Twin {
    /// How `choice` loads a chat model with the user's settings (for tools that load their
    /// own, such as `twin bench draft`).
    pub fn chat_config(&self, choice: &ModelChoice) -> Result<ChatModelConfig, TwinError> {
        Ok(choice.config(&self.stored_settings()?))
    }

    /// The chat model `choice` names, with the adapter it picks for `platform` (see
    /// [`adapters::choose`]); the same model, adapter and settings as last time reuse the loaded
    /// model.
    pub fn chat_model(
        &self,
        lib: &Library,
        choice: &ModelChoice,
        platform: &str,
    ) -> Result<DraftingModel, TwinError> {
        let settings = self.settings_in(lib)?;
        let record = models::resolve_chat_model(lib.store(), choice.model.as_deref())?;
        let adapter = adapters::choose(lib.store(), &choice.adapter, &record, platform)?;
        let config = ChatModelConfig {
            adapter: adapter.as_ref().map(|a| a.path.clone()),
            prompt_cache: Some(lib.data_dir().join("cache").join("prompts")),
            ..choice.config(&settings)
        };
        let key = (
            record.id,
            config.adapter.clone(),
            config.gpu_layers,
            config.threads,
            config.context_tokens,
        );
        let mut cached = lock(&self.chat);
        let model = match cached.as_ref().filter(|c| c.key == key) {
            Some(c) => Arc::clone(&c.model),
            None => {
                // Free the old model first: two small models fit, two large ones may not.
                *cached = None;
                let model = Arc::new(models::load_chat_model(&record, &config)?);
                *cached = Some(LoadedChat {
                    key,
                    model: Arc::clone(&model),
                });
                model
            }
        };
        Ok(DraftingModel {
            record,
            adapter,
            model,
        })
    }

    /// The base chat model `model` names (else the active one) for one long job (a dataset
    /// build), loaded with the settings and not kept.
    pub(super) fn base_model(
        &self,
        lib: &Library,
        model: Option<&str>,
    ) -> Result<(ModelRecord, ChatModel), TwinError> {
        let settings = self.settings_in(lib)?;
        let record = models::resolve_chat_model(lib.store(), model)?;
        let chat = models::load_chat_model(&record, &settings.chat_config())?;
        Ok((record, chat))
    }
}
