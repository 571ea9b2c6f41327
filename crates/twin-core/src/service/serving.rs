//! The twin outside the app: what the local API serves (the model ids other tools see, the
//! model behind an id, grounding in the library, embeddings), and twin bundles.

use super::{lock, DraftingModel, ModelChoice, Twin};
use crate::bundle;
use crate::draft::{self, Grounding};
use crate::error::{ErrorKind, TwinError};
use crate::first_run;
use crate::models::{self, ModelKind};
use crate::progress::{CancelToken, Progress};
use crate::train::adapters::{AdapterPick, DEFAULT_CHANNEL};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// The id of the twin: the active chat model with the adapter in use.
pub const TWIN_ID: &str = "twin";
/// The id of the active chat model alone.
pub const TWIN_BASE_ID: &str = "twin-base";
/// The prefix of an adapter's id: `twin:voice-3`.
pub const ADAPTER_PREFIX: &str = "twin:";

/// A model the local API offers.
#[derive(Clone, Debug, Serialize)]
pub struct ServedModel {
    /// The id a client names: `twin`, `twin-base`, `twin:<adapter>`, or a chat model's name.
    pub id: String,
    /// The base chat model.
    pub base: String,
    /// The adapter, if one is loaded with it.
    pub adapter: Option<String>,
    /// When the model or adapter was added (Unix time).
    pub created: i64,
}

/// Whether the app serves the local API, and on which port (kept in the library's settings,
/// so the app starts it again next time).
#[derive(Clone, Debug, Serialize, serde::Deserialize, PartialEq, Eq, ts_rs::TS)]
#[ts(export)]
pub struct ApiPreference {
    /// Serve while the app runs.
    pub enabled: bool,
    /// Port on 127.0.0.1; 0 for one the system picks.
    pub port: u16,
}

/// The local API as the app's Settings show it.
#[derive(Clone, Debug, Serialize, ts_rs::TS)]
#[ts(export)]
pub struct ApiStatus {
    /// What the user chose.
    pub preference: ApiPreference,
    /// The base URL while it runs (`http://127.0.0.1:<port>/v1`).
    pub base_url: Option<String>,
    /// The bearer token while it runs.
    pub token: Option<String>,
    /// The file the token is kept in.
    pub token_file: PathBuf,
}

const API_ENABLED: &str = "api.enabled";
const API_PORT: &str = "api.port";

/// A model loaded for one API request.
pub struct Serving {
    /// The model and adapter.
    pub loaded: DraftingModel,
    /// The adapter's strength (0: none).
    pub adapter_scale: f32,
}

impl Twin {
    /// Every model id the API serves: the twin, the active base, each adapter that can run on
    /// a registered chat model, then each registered chat model by name.
    pub fn served_models(&self) -> Result<Vec<ServedModel>, TwinError> {
        self.with_library(|lib| {
            let store = lib.store();
            let chat: Vec<_> = store
                .models()?
                .into_iter()
                .filter(|m| m.kind == ModelKind::Chat.as_str())
                .collect();
            let mut served = Vec::new();
            if let Ok(active) = models::resolve_chat_model(store, None) {
                let adapter = crate::train::adapters::for_draft(
                    store,
                    DEFAULT_CHANNEL,
                    &active.sha256,
                    &active.name,
                )
                .ok()
                .flatten();
                served.push(ServedModel {
                    id: TWIN_ID.into(),
                    base: active.name.clone(),
                    adapter: adapter.as_ref().map(|a| a.adapter.name.clone()),
                    created: adapter.map_or(active.added_at, |a| a.adapter.created_at),
                });
                served.push(ServedModel {
                    id: TWIN_BASE_ID.into(),
                    base: active.name.clone(),
                    adapter: None,
                    created: active.added_at,
                });
            }
            for adapter in store.adapters()? {
                if let Some(base) = chat.iter().find(|m| m.sha256 == adapter.base_sha256) {
                    served.push(ServedModel {
                        id: format!("{ADAPTER_PREFIX}{}", adapter.name),
                        base: base.name.clone(),
                        adapter: Some(adapter.name.clone()),
                        created: adapter.created_at,
                    });
                }
            }
            for model in &chat {
                if !served.iter().any(|s| s.id == model.name) {
                    served.push(ServedModel {
                        id: model.name.clone(),
                        base: model.name.clone(),
                        adapter: None,
                        created: model.added_at,
                    });
                }
            }
            Ok(served)
        })
    }

    /// Load the model `id` names (see [`Twin::served_models`]); kept loaded between requests
    /// like a draft's.
    pub fn serving_model(&self, id: &str) -> Result<Serving, TwinError> {
        self.with_library(|lib| {
            let store = lib.store();
            let choice = if id == TWIN_ID {
                ModelChoice::default()
            } else if id == TWIN_BASE_ID {
                ModelChoice {
                    adapter: AdapterPick::BaseModel,
                    ..ModelChoice::default()
                }
            } else if let Some(name) = id.strip_prefix(ADAPTER_PREFIX) {
                let adapter = store
                    .adapters()?
                    .into_iter()
                    .find(|a| a.name == name)
                    .ok_or_else(|| not_found(id))?;
                let base = store
                    .models()?
                    .into_iter()
                    .find(|m| m.sha256 == adapter.base_sha256)
                    .ok_or_else(|| {
                        TwinError::new(
                            ErrorKind::NeedsSetup,
                            format!(
                                "{id} was trained on {}, which is not registered here",
                                adapter.base_name
                            ),
                        )
                    })?;
                ModelChoice {
                    model: Some(base.id.to_string()),
                    adapter: AdapterPick::Named(adapter.id.to_string()),
                    ..ModelChoice::default()
                }
            } else {
                let known = store
                    .models()?
                    .into_iter()
                    .any(|m| m.kind == ModelKind::Chat.as_str() && m.name == id);
                if !known {
                    return Err(not_found(id));
                }
                ModelChoice {
                    model: Some(id.to_string()),
                    adapter: AdapterPick::BaseModel,
                    ..ModelChoice::default()
                }
            };
            let loaded = self.chat_model(lib, &choice, DEFAULT_CHANNEL)?;
            let adapter_scale = loaded.adapter.as_ref().map_or(0.0, |a| a.scale);
            Ok(Serving {
                loaded,
                adapter_scale,
            })
        })
    }

    /// The passages of the library that ground `query` for `serving` (the drafting pipeline's
    /// retrieval, see [`draft::ground`]), and the author's name the prompt uses.
    pub fn ground(
        &self,
        serving: &Serving,
        query: &str,
        keep: usize,
    ) -> Result<(Grounding, String), TwinError> {
        self.with_library(|lib| {
            let author = self.settings_in(lib)?.author;
            let grounding = draft::ground(lib, &serving.loaded.model, query, keep, 900)?;
            Ok((grounding, author))
        })
    }

    /// Embed `texts` with the library's embedding model: its name, the vectors and the tokens
    /// read.
    pub fn embed(&self, texts: &[&str]) -> Result<(String, Vec<Vec<f32>>, usize), TwinError> {
        self.with_library(|lib| {
            let name = lib
                .store()
                .embedding_model()?
                .map(|m| m.name)
                .ok_or_else(|| {
                    TwinError::new(
                        ErrorKind::NeedsSetup,
                        "no embedding model: run `twin import` once to set up the defaults",
                    )
                })?;
            let embedder = lib.embedder()?;
            let tokens = texts.iter().map(|t| embedder.count_tokens(t)).sum();
            let vectors = embedder
                .embed(texts)
                .map_err(crate::library::LibraryError::from)?;
            Ok((name, vectors, tokens))
        })
    }
}

fn not_found(id: &str) -> TwinError {
    TwinError::new(
        ErrorKind::NotFound,
        format!("no model {id}; GET /v1/models lists the ids"),
    )
}

impl Twin {
    /// Whether the app should serve the local API, and where.
    pub fn api_preference(&self) -> Result<ApiPreference, TwinError> {
        self.with_library(|lib| {
            let store = lib.store();
            Ok(ApiPreference {
                enabled: store.setting(API_ENABLED)?.as_deref() == Some("true"),
                port: store
                    .setting(API_PORT)?
                    .and_then(|p| p.parse().ok())
                    .unwrap_or(0),
            })
        })
    }

    /// Keep the app's local API choice.
    pub fn set_api_preference(&self, preference: &ApiPreference) -> Result<(), TwinError> {
        self.with_library(|lib| {
            let store = lib.store();
            store.set_setting(
                API_ENABLED,
                if preference.enabled { "true" } else { "false" },
            )?;
            Ok(store.set_setting(API_PORT, &preference.port.to_string())?)
        })
    }

    /// Bundle the twin into `out` (see [`crate::bundle`]): adapters, history, style card and
    /// settings; the library too when `with_library`.
    pub fn export_bundle(
        &self,
        out: &Path,
        with_library: bool,
        progress: &dyn Progress,
        cancel: &CancelToken,
    ) -> Result<bundle::Exported, TwinError> {
        self.with_library(|lib| Ok(bundle::export(lib, out, with_library, progress, cancel)?))
    }

    /// Import the bundle at `path` into this data folder, running on the base model at `model`
    /// when the user points at one. The library handle and the loaded models are dropped first:
    /// the library may be replaced.
    pub fn import_bundle(
        &self,
        path: &Path,
        model: Option<&Path>,
        progress: &dyn Progress,
        cancel: &CancelToken,
    ) -> Result<bundle::Imported, TwinError> {
        let _active = self.user_activity();
        let mut library = lock(&self.library);
        *library = None;
        *lock(&self.chat) = None;
        *lock(&self.prepared) = None;
        *lock(&self.authorship) = None;
        let settings = self.stored_settings()?;
        Ok(bundle::import(
            path,
            &self.data_dir,
            model,
            &first_run::search_dirs(&self.model_dirs),
            settings.embedder_config(),
            progress,
            cancel,
        )?)
    }
}
