//! The user's settings: typed, with defaults, kept in the store.

use crate::engine::{ChatModelConfig, EmbedderConfig};
use crate::store::{Store, StoreError};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// How prompts name the author until the user gives their name.
pub const DEFAULT_AUTHOR: &str = "the author";

const THREADS: &str = "app.threads";
const GPU_LAYERS: &str = "app.gpu_layers";
const AUTHOR: &str = "app.author";

/// What the user chose in Settings (and what the CLI's flags override for one command).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[ts(export)]
pub struct Settings {
    /// CPU threads for llama.cpp (0 = all cores).
    #[serde(default)]
    pub threads: usize,
    /// GPU layers (None = as many as fit, on GPU builds).
    #[serde(default)]
    pub gpu_layers: Option<u32>,
    /// How prompts name the author; also the name that picks the user's posts out of a
    /// multi-author export.
    #[serde(default = "default_author")]
    pub author: String,
    /// Where this library lives (read-only: set `TWIN_DATA_DIR` or `--data-dir` to move it).
    #[serde(default, skip_deserializing)]
    pub data_dir: PathBuf,
}

fn default_author() -> String {
    DEFAULT_AUTHOR.into()
}

impl Settings {
    /// The settings stored in `store`, defaults where none are.
    pub fn load(store: &Store) -> Result<Self, StoreError> {
        Ok(Self {
            threads: store
                .setting(THREADS)?
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
            gpu_layers: store.setting(GPU_LAYERS)?.and_then(|v| v.parse().ok()),
            author: store
                .setting(AUTHOR)?
                .filter(|a| !a.trim().is_empty())
                .unwrap_or_else(default_author),
            data_dir: store.path().parent().map(PathBuf::from).unwrap_or_default(),
        })
    }

    /// Keep these settings in `store`.
    pub fn save(&self, store: &Store) -> Result<(), StoreError> {
        store.set_setting(THREADS, &self.threads.to_string())?;
        match self.gpu_layers {
            Some(n) => store.set_setting(GPU_LAYERS, &n.to_string())?,
            None => store.delete_setting(GPU_LAYERS)?,
        }
        store.set_setting(AUTHOR, self.author.trim())
    }

    /// The user's own name, when they gave one (not the default "the author").
    pub fn user_name(&self) -> Option<&str> {
        let name = self.author.trim();
        (!name.is_empty() && name != DEFAULT_AUTHOR).then_some(name)
    }

    /// How to run a chat model with these settings.
    pub fn chat_config(&self) -> ChatModelConfig {
        let mut config = ChatModelConfig {
            gpu_layers: self.gpu_layers,
            ..Default::default()
        };
        if self.threads > 0 {
            config.threads = self.threads;
        }
        config
    }

    /// How to run the embedding model with these settings.
    pub fn embedder_config(&self) -> EmbedderConfig {
        let mut config = EmbedderConfig::default();
        if self.threads > 0 {
            config.threads = self.threads;
        }
        config
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_round_trip_through_the_store_with_defaults_for_what_is_unset() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("twin.db")).unwrap();
        let fresh = Settings::load(&store).unwrap();
        assert_eq!(fresh.threads, 0);
        assert_eq!(fresh.gpu_layers, None);
        assert_eq!(fresh.author, DEFAULT_AUTHOR);
        assert_eq!(fresh.user_name(), None);
        assert_eq!(fresh.data_dir, dir.path());
        let mine = Settings {
            threads: 3,
            gpu_layers: Some(12),
            author: " Nell ".into(),
            ..fresh
        };
        mine.save(&store).unwrap();
        let back = Settings::load(&store).unwrap();
        assert_eq!((back.threads, back.gpu_layers), (3, Some(12)));
        assert_eq!(back.user_name(), Some("Nell"));
        assert_eq!(back.chat_config().threads, 3);
        Settings {
            gpu_layers: None,
            ..back
        }
        .save(&store)
        .unwrap();
        assert_eq!(Settings::load(&store).unwrap().gpu_layers, None);
    }
}
