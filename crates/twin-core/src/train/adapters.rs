//! The adapter registry: which adapters exist, which one each channel (the default, or a
//! platform such as `linkedin`) uses and at what strength, rollback, and the guarantee that an
//! adapter is only ever served on the exact base model it was trained on.

use crate::store::{AdapterRecord, Store, StoreError};
use serde::Serialize;
use std::path::PathBuf;

/// The channel used when a platform has no adapter of its own.
pub const DEFAULT_CHANNEL: &str = "default";

/// Every channel an adapter can be chosen for: the default and one per platform a format
/// writes for.
pub const CHANNELS: [&str; 5] = [DEFAULT_CHANNEL, "linkedin", "x", "blog", "newsletter"];

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
    /// The adapter file is not the one that was trained and registered.
    #[error("{path}: the adapter file changed since it was trained (sha256 {actual}, registered {recorded}); it was not loaded — retrain, or roll back with `twin adapters rollback`")]
    Changed {
        /// The adapter file.
        path: PathBuf,
        /// sha256 prefix of the file now.
        actual: String,
        /// sha256 prefix the registry recorded.
        recorded: String,
    },
    /// The adapter file could not be read.
    #[error("{path}: the adapter file cannot be read: {reason}")]
    Unreadable {
        /// The adapter file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

crate::error::classify!(AdapterError {
    kind: Self::NotFound(_) | Self::Missing(_) => NotFound,
        Self::Ambiguous(_) | Self::BaseMismatch { .. } | Self::Changed { .. } => BadInput,
        Self::Unreadable { .. } => Io;
    inner: Store;
    path: Self::Missing(path) | Self::BaseMismatch { path, .. } | Self::Changed { path, .. }
        | Self::Unreadable { path, .. } => path.as_path();
});

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
    check(&adapter, base_sha256, base_name)?;
    Ok(Some(AdapterChoice {
        adapter,
        scale: active.scale,
        channel: channel.to_string(),
    }))
}

/// Which adapter a command asks for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum AdapterPick {
    /// The one in use for the format's platform, else the default channel's (see [`for_draft`]).
    #[default]
    InUse,
    /// None: the base model alone.
    BaseModel,
    /// A registered adapter's id or name, or a GGUF LoRA file.
    Named(String),
}

/// The adapter a model is loaded with.
#[derive(Clone, Debug, Serialize)]
pub struct ChosenAdapter {
    /// The GGUF LoRA file.
    pub path: PathBuf,
    /// The strength chosen for it (a named adapter: 1).
    pub scale: f32,
    /// Its name for people: `voice-2 (#2, linkedin channel)`.
    pub label: String,
}

/// The adapter `pick` names for the base model `record` drafting for `platform`: a named one
/// (checked against the base), none, or the one in use (see [`for_draft`]).
pub fn choose(
    store: &Store,
    pick: &AdapterPick,
    record: &crate::store::ModelRecord,
    platform: &str,
) -> Result<Option<ChosenAdapter>, AdapterError> {
    match pick {
        AdapterPick::BaseModel => Ok(None),
        AdapterPick::Named(q) => match find(store, q) {
            Ok(a) => {
                check(&a, &record.sha256, &record.name)?;
                Ok(Some(ChosenAdapter {
                    path: a.path.clone().into(),
                    scale: 1.0,
                    label: format!("{} (#{})", a.name, a.id),
                }))
            }
            Err(AdapterError::NotFound(_)) if std::path::Path::new(q).is_file() => {
                Ok(Some(ChosenAdapter {
                    path: q.into(),
                    scale: 1.0,
                    label: q.clone(),
                }))
            }
            Err(e) => Err(e),
        },
        AdapterPick::InUse => Ok(
            for_draft(store, platform, &record.sha256, &record.name)?.map(|c| ChosenAdapter {
                path: c.adapter.path.clone().into(),
                scale: c.scale,
                label: format!(
                    "{} (#{}, {} channel)",
                    c.adapter.name, c.adapter.id, c.channel
                ),
            }),
        ),
    }
}

/// Which adapter each channel uses, for every channel that chose one.
pub fn in_use(store: &Store) -> Result<Vec<ChannelChoice>, AdapterError> {
    let mut active = Vec::new();
    for channel in CHANNELS {
        if let Some(a) = store.active_adapter(channel)? {
            active.push(ChannelChoice {
                channel: channel.to_string(),
                adapter: a.adapter,
                scale: a.scale,
            });
        }
    }
    Ok(active)
}

/// A channel's choice: an adapter at a strength, or the base model (`adapter: None`).
#[derive(Clone, Debug, Serialize, ts_rs::TS)]
#[ts(export)]
pub struct ChannelChoice {
    /// The channel (see [`CHANNELS`]).
    pub channel: String,
    /// The adapter; `None` for the base model alone.
    pub adapter: Option<AdapterRecord>,
    /// Strength.
    pub scale: f32,
}

/// Refuse `adapter` unless it can be served on the base model with sha256 `base_sha256`: it
/// was trained on that model and its file is the one registered.
pub fn check(
    adapter: &AdapterRecord,
    base_sha256: &str,
    base_name: &str,
) -> Result<(), AdapterError> {
    check_base(adapter, base_sha256, base_name)?;
    check_file(adapter)
}

/// Refuse an adapter whose file is missing or is not the file that was registered (a partial
/// copy, a disk error, a file swapped underneath): llama.cpp would load whatever tensors it
/// finds. Hashing is skipped while the file's size and modification time are the ones last
/// verified in this process, so a draft pays for it once.
pub fn check_file(adapter: &AdapterRecord) -> Result<(), AdapterError> {
    use std::collections::HashMap;
    use std::sync::Mutex;
    type Stamp = (u64, Option<std::time::SystemTime>);
    static VERIFIED: Mutex<Option<HashMap<(PathBuf, String), Stamp>>> = Mutex::new(None);

    let path = PathBuf::from(&adapter.path);
    let meta = std::fs::metadata(&path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => AdapterError::Missing(path.clone()),
        _ => AdapterError::Unreadable {
            path: path.clone(),
            reason: e.to_string(),
        },
    })?;
    let stamp = (meta.len(), meta.modified().ok());
    let key = (path.clone(), adapter.sha256.clone());
    let known = |v: &Option<HashMap<_, Stamp>>| v.as_ref().and_then(|m| m.get(&key)).copied();
    if VERIFIED.lock().ok().and_then(|v| known(&v)) == Some(stamp) {
        return Ok(());
    }
    let actual =
        crate::models::registry::sha256_file(&path).map_err(|e| AdapterError::Unreadable {
            path: path.clone(),
            reason: e.to_string(),
        })?;
    if actual != adapter.sha256 {
        return Err(AdapterError::Changed {
            path,
            actual: short(&actual),
            recorded: short(&adapter.sha256),
        });
    }
    if let Ok(mut v) = VERIFIED.lock() {
        v.get_or_insert_with(HashMap::new).insert(key, stamp);
    }
    Ok(())
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
    Err(AdapterError::BaseMismatch {
        path: adapter.path.clone().into(),
        name: adapter.name.clone(),
        trained_on: short(&adapter.base_sha256),
        in_use: base_name.to_string(),
        in_use_sha: short(base_sha256),
    })
}

/// The first 12 hex digits of a sha256, as messages show it.
fn short(sha: &str) -> String {
    sha.chars().take(12).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(path: &std::path::Path, sha256: String) -> AdapterRecord {
        AdapterRecord {
            id: 1,
            name: "voice-1".into(),
            path: path.to_string_lossy().into_owned(),
            architecture: "llama".into(),
            base_sha256: "b".repeat(64),
            base_name: "base".into(),
            dataset_id: "d".into(),
            params: serde_json::Value::Null,
            metrics: serde_json::Value::Null,
            sha256,
            size: 0,
            created_at: 0,
        }
    }

    #[test]
    fn an_adapter_file_that_changed_or_vanished_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("voice-1.gguf");
        std::fs::write(&path, b"GGUF adapter tensors").unwrap();
        let sha = crate::models::registry::sha256_file(&path).unwrap();
        let adapter = record(&path, sha);
        check(&adapter, &"b".repeat(64), "base").unwrap();
        // Same size, other bytes, (possibly) the same second: still caught, because the
        // modification time is kept to the nanosecond where the file system has it.
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&path, b"GGUF adapter tensorz").unwrap();
        let err = check(&adapter, &"b".repeat(64), "base").unwrap_err();
        assert!(
            matches!(err, AdapterError::Changed { .. }),
            "{err}: a changed file is not served"
        );
        assert!(err.to_string().contains("changed since it was trained"));
        std::fs::remove_file(&path).unwrap();
        assert!(matches!(
            check_file(&adapter).unwrap_err(),
            AdapterError::Missing(_)
        ));
    }
}
