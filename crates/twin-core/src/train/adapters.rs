//! The adapter registry: which adapters exist, which one each channel (the default, or a
//! platform such as `linkedin`) uses and at what strength, rollback, and the guarantee that an
//! adapter is only ever served on the exact base model it was trained on.

use crate::store::{AdapterRecord, Store, StoreError};
use serde::Serialize;
use std::path::PathBuf;

/// The channel used when a platform has no adapter of its own.
pub const DEFAULT_CHANNEL: &str = "default";

/// Errors of the adapter registry.
#[derive(Debug, thiserror::Error)]
pub enum AdapterError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No adapter matches.
    #[error("no adapter matches {0:?}; see `twin adapters list`")]
    NotFound(String),
    /// Several adapters match.
    #[error("{0:?} matches several adapters; use its id")]
    Ambiguous(String),
    /// The adapter was trained on a different base model.
    #[error("{path}: adapter {name:?} was trained on base model sha256 {trained_on}, but the model in use is {in_use} (sha256 {in_use_sha}); train an adapter for this model or switch back")]
    BaseMismatch {
        /// The adapter file.
        path: PathBuf,
        /// The adapter's name.
        name: String,
        /// sha256 prefix of the base it was trained on.
        trained_on: String,
        /// Name of the model in use.
        in_use: String,
        /// sha256 prefix of the model in use.
        in_use_sha: String,
    },
    /// The adapter file is gone.
    #[error("{0}: the adapter file is missing")]
    Missing(PathBuf),
}

/// The adapter a draft will use.
#[derive(Clone, Debug, Serialize)]
pub struct AdapterChoice {
    /// The adapter.
    pub adapter: AdapterRecord,
    /// Strength (LoRA scale).
    pub scale: f32,
    /// The channel it was chosen for.
    pub channel: String,
}

/// Find an adapter by id or by (unique prefix of) name.
pub fn find(store: &Store, query: &str) -> Result<AdapterRecord, AdapterError> {
    let all = store.adapters()?;
    if let Ok(id) = query.parse::<i64>() {
        if let Some(a) = all.iter().find(|a| a.id == id) {
            return Ok(a.clone());
        }
    }
    if let Some(a) = all.iter().find(|a| a.name == query) {
        return Ok(a.clone());
    }
    let matches: Vec<&AdapterRecord> = all.iter().filter(|a| a.name.starts_with(query)).collect();
    match matches.len() {
        1 => Ok(matches[0].clone()),
        0 => Err(AdapterError::NotFound(query.into())),
        _ => Err(AdapterError::Ambiguous(query.into())),
    }
}

/// Use `adapter` (None: no adapter) for `channel` at `scale`.
pub fn activate(
    store: &Store,
    channel: &str,
    adapter: Option<&AdapterRecord>,
    scale: f32,
) -> Result<(), AdapterError> {
    if let Some(a) = adapter {
        if !std::path::Path::new(&a.path).exists() {
            return Err(AdapterError::Missing(a.path.clone().into()));
        }
    }
    store.activate_adapter(channel, adapter.map(|a| a.id), scale)?;
    Ok(())
}

/// Go back to the adapter `channel` used before the current one; returns whether anything
/// changed.
pub fn rollback(store: &Store, channel: &str) -> Result<bool, AdapterError> {
    Ok(store.rollback_adapter(channel)?)
}

/// Forget `adapter` and delete its file (its activations go with it, so channels that used it
/// fall back to what they used before).
pub fn remove(store: &Store, adapter: &AdapterRecord) -> Result<(), AdapterError> {
    store.remove_adapter(adapter.id)?;
    let _ = std::fs::remove_file(&adapter.path);
    Ok(())
}

/// The adapter drafting uses for `platform` on the base model with sha256 `base_sha256`
/// (named `base_name`): the platform's own choice, else the default channel's. An adapter
/// trained on another base model is refused.
pub fn for_draft(
    store: &Store,
    platform: &str,
    base_sha256: &str,
    base_name: &str,
) -> Result<Option<AdapterChoice>, AdapterError> {
    let (active, channel) = match store.active_adapter(platform)? {
        Some(a) => (a, platform),
        None => match store.active_adapter(DEFAULT_CHANNEL)? {
            Some(a) => (a, DEFAULT_CHANNEL),
            None => return Ok(None),
        },
    };
    let Some(adapter) = active.adapter else {
        return Ok(None);
    };
    check_base(&adapter, base_sha256, base_name)?;
    if !std::path::Path::new(&adapter.path).exists() {
        return Err(AdapterError::Missing(adapter.path.into()));
    }
    Ok(Some(AdapterChoice {
        adapter,
        scale: active.scale,
        channel: channel.to_string(),
    }))
}

/// Refuse `adapter` unless it was trained on the base model with sha256 `base_sha256`.
pub fn check_base(
    adapter: &AdapterRecord,
    base_sha256: &str,
    base_name: &str,
) -> Result<(), AdapterError> {
    if adapter.base_sha256 == base_sha256 {
        return Ok(());
    }
    let short = |s: &str| s[..12.min(s.len())].to_string();
    Err(AdapterError::BaseMismatch {
        path: adapter.path.clone().into(),
        name: adapter.name.clone(),
        trained_on: short(&adapter.base_sha256),
        in_use: base_name.to_string(),
        in_use_sha: short(base_sha256),
    })
}
