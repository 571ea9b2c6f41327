//! Models, datasets, training, adapters and evaluation through the service: each command's
//! defaults (the active model, the newest dataset, the user's name, the context evaluation
//! needs) decided once for both shells.

use super::Twin;
use crate::error::TwinError;
use crate::eval::{self, EvalParams, Summary};
use crate::models::{self, registry, ModelKind};
use crate::progress::{CancelToken, Progress};
use crate::prompt::templates::Templates;
use crate::store::{AdapterRecord, DatasetRecord, ModelRecord};
use crate::train::dataset::{self, Dataset, DatasetParams, Example};
use crate::train::{self, adapters, TrainError, TrainEvent, TrainOutcome, TrainParams, TrainPlan};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Registered models, the active ones, and models found in Ollama and LM Studio.
#[derive(Clone, Debug, Serialize, ts_rs::TS)]
#[ts(export)]
pub struct ModelsOverview {
    /// Every registered model.
    pub registered: Vec<ModelRecord>,
    /// The active chat model's id.
    pub active_chat: Option<i64>,
    /// The active reranker's id.
    pub active_reranker: Option<i64>,
    /// Models other apps keep on this machine that are not registered yet.
    pub discovered: Vec<registry::Discovered>,
}

/// What a training screen lets the user choose; everything else keeps [`TrainParams`]'
/// defaults, and a missing, zero or non-finite choice is the default too.
#[derive(Clone, Debug, Default, serde::Deserialize, ts_rs::TS)]
#[serde(rename_all = "camelCase")]
#[ts(export)]
pub struct TrainChoices {
    /// Passes over the examples at most.
    pub epochs: Option<f64>,
    /// Optimizer steps at most.
    pub max_steps: Option<usize>,
    /// Adapter rank.
    pub rank: Option<usize>,
}

impl TrainChoices {
    /// The training parameters these choices make.
    pub fn params(self) -> TrainParams {
        let mut p = TrainParams::default();
        if let Some(e) = self.epochs.filter(|e| e.is_finite() && *e > 0.0) {
            p.epochs = e;
        }
        p.max_steps = self.max_steps.filter(|s| *s > 0);
        if let Some(r) = self.rank.filter(|r| *r > 0) {
            p.lora.rank = r;
        }
        p
    }
}

/// Twin's model catalog judged against this computer, the pick first.
#[derive(Clone, Debug, Serialize, ts_rs::TS)]
#[ts(export)]
pub struct Recommendations {
    /// The catalog's version.
    pub catalog_version: u32,
    /// When its entries were last checked.
    pub reviewed: String,
    /// This computer as the recommendation sees it.
    pub machine: models::Machine,
    /// Every catalog model with the verdict for this machine.
    pub models: Vec<models::Recommendation>,
}

/// The newest dataset and a few of its examples of the user's own writing.
#[derive(Clone, Debug, Serialize, ts_rs::TS)]
#[ts(export)]
pub struct DatasetOverview {
    /// The dataset.
    pub record: DatasetRecord,
    /// Its first examples of the user's writing.
    pub examples: Vec<Example>,
}

/// Every adapter, and which one each channel uses.
#[derive(Clone, Debug, Serialize, ts_rs::TS)]
#[ts(export)]
pub struct AdaptersOverview {
    /// Every adapter, newest first.
    pub adapters: Vec<AdapterRecord>,
    /// The channels that chose one (see [`adapters::CHANNELS`]).
    pub active: Vec<adapters::ChannelChoice>,
}

/// A finished evaluation: its report, where it was written, and whether it resumed.
#[derive(Clone, Debug, Serialize)]
pub struct Evaluated {
    /// The report, recomputed from the stored measurements.
    pub summary: Summary,
    /// The HTML and JSON report files.
    pub files: (PathBuf, PathBuf),
    /// Whether an interrupted run was resumed.
    pub resumed: bool,
}

impl Twin {
    /// Registered models, the active ones, and the models Ollama and LM Studio keep in `home`.
    pub fn models(&self, home: Option<&Path>) -> Result<ModelsOverview, TwinError> {
        self.with_library(|lib| {
            let store = lib.store();
            let registered = store.models()?;
            let discovered = home
                .map(registry::discover)
                .unwrap_or_default()
                .into_iter()
                .filter(|d| {
                    let p = std::fs::canonicalize(&d.path).unwrap_or(d.path.clone());
                    !registered.iter().any(|m| Path::new(&m.path) == p)
                })
                .collect();
            Ok(ModelsOverview {
                active_chat: registry::active(store, ModelKind::Chat)?.map(|m| m.id),
                active_reranker: registry::active(store, ModelKind::Reranker)?.map(|m| m.id),
                registered,
                discovered,
            })
        })
    }

    /// The catalog's models judged against this computer's memory and GPU.
    pub fn recommendations(&self) -> Result<Recommendations, TwinError> {
        let machine = models::Machine::from_devices(&crate::engine::compute_devices()?);
        let catalog = models::Catalog::shipped();
        let registered = self.with_library(|lib| Ok(lib.store().models()?))?;
        Ok(Recommendations {
            models: models::recommend(&catalog, &machine, &registered),
            catalog_version: catalog.version,
            reviewed: catalog.reviewed,
            machine,
        })
    }

    /// Convert a sentence-transformers folder to GGUF in the data folder's `models/` and put it
    /// to use: a cross-encoder becomes the active reranker, anything else the library's
    /// embedding model. Also whether the previous embedding model's vectors were dropped (the
    /// next import re-embeds everything).
    pub fn import_model_folder(
        &self,
        folder: &Path,
        f32: bool,
    ) -> Result<(models::ConvertedModel, bool), TwinError> {
        let dir = self.data_dir.join("models");
        std::fs::create_dir_all(&dir)
            .map_err(|e| TwinError::about(crate::error::ErrorKind::Io, &dir, e))?;
        let name = folder
            .canonicalize()
            .ok()
            .and_then(|f| f.file_name().map(|n| n.to_string_lossy().into_owned()))
            .ok_or_else(|| {
                TwinError::about(crate::error::ErrorKind::NotFound, folder, "no such folder")
            })?;
        let out = dir.join(format!("{name}.{}.gguf", if f32 { "f32" } else { "f16" }));
        let converted = models::convert_sentence_transformer(
            folder,
            &out,
            &models::ConvertOptions { f16: !f32 },
        )?;
        self.with_library(|lib| {
            let reset = !converted.reranker && lib.set_embedding_model(&converted.path)?;
            let record =
                registry::register(lib.store(), &converted.path, "converted", Some(&name), None)?;
            if converted.reranker {
                registry::set_active(lib.store(), &record)?;
            }
            Ok((converted, reset))
        })
    }

    /// Register, in place, the model Ollama or LM Studio keeps in `home` under `name` (as
    /// [`Twin::models`] lists it); its file is hashed, not taken on the other app's word.
    pub fn adopt_model(&self, name: &str, home: &Path) -> Result<ModelRecord, TwinError> {
        let found = registry::discover(home)
            .into_iter()
            .find(|d| d.name == name)
            .ok_or_else(|| {
                TwinError::new(
                    crate::error::ErrorKind::NotFound,
                    format!("no model named {name:?} in Ollama's or LM Studio's folders; see `twin models list`"),
                )
            })?;
        self.with_library(|lib| {
            Ok(registry::register(
                lib.store(),
                &found.path,
                &found.origin,
                Some(&found.name),
                None,
            )?)
        })
    }

    /// Register a GGUF file in place; the first chat model becomes the active one.
    pub fn add_model(
        &self,
        path: &Path,
        origin: &str,
        name: Option<&str>,
    ) -> Result<ModelRecord, TwinError> {
        self.with_library(|lib| {
            let store = lib.store();
            let record = registry::register(store, path, origin, name, None)?;
            if record.kind == ModelKind::Chat.as_str()
                && registry::active(store, ModelKind::Chat)?.map(|m| m.id) == Some(record.id)
            {
                registry::set_active(store, &record)?;
            }
            Ok(record)
        })
    }

    /// Make a registered model (id, name or path) the active one of its kind, after checking
    /// its file is still the one registered.
    pub fn use_model(&self, query: &str) -> Result<ModelRecord, TwinError> {
        self.with_library(|lib| {
            let record = registry::find(lib.store(), query)?;
            registry::verify(&record, false)?;
            registry::set_active(lib.store(), &record)?;
            Ok(record)
        })
    }

    /// Build a new dataset version from the library with the chat model `model` names (else
    /// the active one); `params.author` is the setting unless `author` overrides it.
    pub fn build_dataset(
        &self,
        mut params: DatasetParams,
        author: Option<String>,
        model: Option<&str>,
        progress: &dyn Progress,
        cancel: &CancelToken,
    ) -> Result<Dataset, TwinError> {
        let _active = self.user_activity();
        self.with_library(|lib| {
            params.author = author.unwrap_or(self.settings_in(lib)?.author);
            let (record, chat) = self.base_model(lib, model)?;
            let templates = Templates::in_data_dir(lib.data_dir())?;
            Ok(dataset::build(
                lib.store_mut(),
                &chat,
                &record.sha256,
                &templates,
                &params,
                progress,
                cancel,
            )?)
        })
    }

    /// The preference pairs the newest dataset (else `dataset`) and the user's edits give (see
    /// [`crate::train::preferences`]).
    pub fn preference_pairs(
        &self,
        dataset: Option<&str>,
    ) -> Result<Vec<crate::train::preferences::PreferencePair>, TwinError> {
        self.with_library(|lib| {
            let data = Dataset::load(lib.store(), dataset)?;
            let edits = lib.store().draft_edits(usize::MAX >> 1)?;
            let templates = Templates::in_data_dir(lib.data_dir())?;
            let author = self.settings_in(lib)?.author;
            Ok(crate::train::preferences::pairs(
                &data, &edits, &templates, &author,
            )?)
        })
    }

    /// The newest dataset and its first `examples` examples of the user's writing; `None`
    /// before the first build.
    pub fn dataset_overview(&self, examples: usize) -> Result<Option<DatasetOverview>, TwinError> {
        self.with_library(|lib| match Dataset::load(lib.store(), None) {
            Ok(d) => Ok(Some(DatasetOverview {
                examples: d
                    .examples
                    .iter()
                    .filter(|e| e.kind == crate::store::ExampleKind::User)
                    .take(examples)
                    .cloned()
                    .collect(),
                record: d.record,
            })),
            Err(TrainError::NoDataset) => Ok(None),
            Err(e) => Err(e.into()),
        })
    }

    /// The training plan (examples, tokens, steps, memory, and the speed measured on this
    /// machine) for `dataset` (else the newest) on `model` (else the active one).
    pub fn train_plan(
        &self,
        model: Option<&str>,
        dataset: Option<&str>,
        params: &TrainParams,
    ) -> Result<TrainPlan, TwinError> {
        self.with_library(|lib| {
            let record = models::resolve_chat_model(lib.store(), model)?;
            let dataset = Dataset::load(lib.store(), dataset)?;
            Ok(train::plan(
                Path::new(&record.path),
                &dataset,
                params,
                true,
            )?)
        })
    }

    /// Train an adapter on `dataset` (else the newest) for `model` (else the active one),
    /// resuming an interrupted run with the same settings.
    pub fn train(
        &self,
        model: Option<&str>,
        dataset: Option<&str>,
        params: &TrainParams,
        name: Option<&str>,
        cancel: &CancelToken,
        on_event: &mut dyn FnMut(TrainEvent),
    ) -> Result<TrainOutcome, TwinError> {
        let _active = self.user_activity();
        self.with_library(|lib| {
            let record = models::resolve_chat_model(lib.store(), model)?;
            registry::verify(&record, false)?;
            let dataset = Dataset::load(lib.store(), dataset)?;
            // An adapter to continue from, named as the user names adapters.
            let mut params = params.clone();
            if let Some(query) = &params.init_adapter {
                let from = adapters::find(lib.store(), query)?;
                adapters::check(&from, &record.sha256, &record.name)?;
                params.init_adapter = Some(from.path);
            }
            Ok(train::train(
                lib.store(),
                &record,
                &dataset,
                &params,
                name,
                cancel,
                on_event,
            )?)
        })
    }

    /// Every adapter and each channel's choice.
    pub fn adapters(&self) -> Result<AdaptersOverview, TwinError> {
        self.with_library(|lib| {
            Ok(AdaptersOverview {
                adapters: lib.store().adapters()?,
                active: adapters::in_use(lib.store())?,
            })
        })
    }

    /// Use the adapter `query` names (None: the base model) for `channel` (None: the default)
    /// at `strength`; the adapter now used.
    pub fn use_adapter(
        &self,
        query: Option<&str>,
        strength: f32,
        channel: Option<&str>,
    ) -> Result<Option<AdapterRecord>, TwinError> {
        self.with_library(|lib| {
            let store = lib.store();
            let adapter = query.map(|q| adapters::find(store, q)).transpose()?;
            let channel = channel.unwrap_or(adapters::DEFAULT_CHANNEL);
            adapters::activate(store, channel, adapter.as_ref(), strength)?;
            Ok(adapter)
        })
    }

    /// Go back to the adapter `channel` (None: the default) used before; what it uses now, or
    /// `None` when there was nothing to roll back.
    pub fn rollback_adapter(
        &self,
        channel: Option<&str>,
    ) -> Result<Option<adapters::ChannelChoice>, TwinError> {
        self.with_library(|lib| {
            let channel = channel.unwrap_or(adapters::DEFAULT_CHANNEL);
            if !adapters::rollback(lib.store(), channel)? {
                return Ok(None);
            }
            let now = lib.store().active_adapter(channel)?;
            Ok(Some(adapters::ChannelChoice {
                channel: channel.to_string(),
                adapter: now.as_ref().and_then(|a| a.adapter.clone()),
                scale: now.map_or(0.0, |a| a.scale),
            }))
        })
    }

    /// Evaluate `model` (else the active chat model) and its adapters on the held-out split,
    /// resuming an interrupted run; `params.author` is the setting unless `author` overrides
    /// it. Writes the HTML and JSON report to `out` (default: `<data dir>/reports`).
    pub fn evaluate(
        &self,
        mut params: EvalParams,
        author: Option<String>,
        model: Option<&str>,
        out: Option<&Path>,
        progress: &dyn Progress,
        cancel: &CancelToken,
    ) -> Result<Evaluated, TwinError> {
        let _active = self.user_activity();
        self.with_library(|lib| {
            let settings = self.settings_in(lib)?;
            params.author = author.unwrap_or_else(|| settings.author.clone());
            let record = models::resolve_chat_model(lib.store(), model)?;
            let config = crate::engine::ChatModelConfig {
                context_tokens: eval::CONTEXT_TOKENS,
                ..settings.chat_config()
            };
            let outcome = eval::run(lib, &record, &config, &params, progress, cancel)?;
            let summary = Summary::load(lib.store(), outcome.run)?;
            let dir = out.map_or_else(|| lib.data_dir().join("reports"), Path::to_path_buf);
            let files = eval::write_report(&summary, &dir)?;
            Ok(Evaluated {
                summary,
                files,
                resumed: outcome.resumed,
            })
        })
    }
}
