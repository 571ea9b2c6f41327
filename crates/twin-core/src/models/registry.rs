//! The model registry: which GGUF files Twin may use, their sha256, and which one is active for
//! each job (chat, reranking). Embedding models are chosen per library (`Library`), because the
//! vectors depend on them.
//!
//! Models the user already has in Ollama or LM Studio are found by [`discover`] and registered
//! in place: multi-gigabyte files are never copied.

use super::ModelError;
use crate::gguf::Header;
use crate::store::{ModelId, ModelRecord, Store};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};

/// What a model is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    /// Generates text.
    Chat,
    /// Turns text into vectors (pooled output).
    Embedding,
    /// Scores a query against a passage (rank pooling, classification head).
    Reranker,
}

impl ModelKind {
    /// The name stored in the registry.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Chat => "chat",
            Self::Embedding => "embedding",
            Self::Reranker => "reranker",
        }
    }

    /// Settings key holding the active model of this kind.
    fn setting_key(self) -> String {
        format!("active_model.{}", self.as_str())
    }

    /// What a GGUF header says the model is: pooled models embed, pooled models with a
    /// classification head rerank, everything else chats.
    pub fn of(header: &Header) -> Self {
        let arch = header.architecture.as_deref().unwrap_or_default();
        let pooled = header
            .keys
            .iter()
            .any(|k| k == &format!("{arch}.pooling_type"));
        match (pooled, header.has_classifier) {
            (true, true) => Self::Reranker,
            (true, false) => Self::Embedding,
            (false, _) => Self::Chat,
        }
    }
}

impl std::str::FromStr for ModelKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "chat" => Ok(Self::Chat),
            "embedding" => Ok(Self::Embedding),
            "reranker" => Ok(Self::Reranker),
            other => Err(format!(
                "unknown model kind {other:?} (chat, embedding or reranker)"
            )),
        }
    }
}

/// A GGUF file found in another app's model folder.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, ts_rs::TS)]
#[ts(export)]
pub struct Discovered {
    /// The name the other app shows (`llama3.2:3b`, `publisher/repo/file.gguf`).
    pub name: String,
    /// The file.
    pub path: PathBuf,
    /// `ollama` or `lmstudio`.
    pub origin: String,
    /// sha256 when the other app records it (Ollama's blobs are named by it).
    pub sha256: Option<String>,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ModelError + '_ {
    move |source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// sha256 of a file, hex-encoded.
pub fn sha256_file(path: &Path) -> Result<String, ModelError> {
    let mut file = std::fs::File::open(path).map_err(io_err(path))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(io_err(path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(format!("{:x}", hasher.finalize()))
}

fn mtime_ns(meta: &std::fs::Metadata) -> i64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// Check `path` is a complete GGUF file and say what kind of model it is.
pub fn inspect(path: &Path) -> Result<(Header, ModelKind), ModelError> {
    let header = crate::gguf::read_header(path).map_err(|e| match e {
        crate::gguf::GgufError::Invalid { reason, .. } => ModelError::Invalid {
            path: path.to_path_buf(),
            reason,
        },
        crate::gguf::GgufError::Io { source, .. } => ModelError::Io {
            path: path.to_path_buf(),
            source,
        },
    })?;
    if header.file_type.as_deref() == Some("adapter") {
        return Err(ModelError::Invalid {
            path: path.to_path_buf(),
            reason: "this is a LoRA adapter, not a model".into(),
        });
    }
    let kind = ModelKind::of(&header);
    Ok((header, kind))
}

/// Register the GGUF file at `path` (validated and hashed; `known_sha256` skips hashing when
/// Twin itself hashed the file, as a pull does). A file named by its digest (Ollama's
/// `sha256-…` blobs) must match it.
pub fn register(
    store: &Store,
    path: &Path,
    origin: &str,
    name: Option<&str>,
    known_sha256: Option<&str>,
) -> Result<ModelRecord, ModelError> {
    let path = std::fs::canonicalize(path).map_err(io_err(path))?;
    let (header, kind) = inspect(&path)?;
    let meta = std::fs::metadata(&path).map_err(io_err(&path))?;
    let sha256 = match known_sha256 {
        Some(h) => h.to_string(),
        None => sha256_file(&path)?,
    };
    // Ollama names each blob by its sha256: a blob that does not match its name is damaged (or
    // was swapped), and a model picked by that name must not be served from it.
    let named = path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("sha256-"))
        .filter(|h| h.len() == 64 && h.chars().all(|c| c.is_ascii_hexdigit()))
        .map(str::to_string);
    if let Some(expected) = named {
        if !expected.eq_ignore_ascii_case(&sha256) {
            return Err(ModelError::Checksum {
                path,
                expected,
                actual: sha256,
            });
        }
    }
    let name = name.map(str::to_string).unwrap_or_else(|| {
        path.file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .or(header.name.clone())
            .unwrap_or_else(|| "model".into())
    });
    let mut record = ModelRecord {
        id: 0,
        name,
        path: path.to_string_lossy().into_owned(),
        kind: kind.as_str().into(),
        origin: origin.into(),
        architecture: header.architecture,
        sha256,
        size: meta.len(),
        mtime: mtime_ns(&meta),
        added_at: 0,
    };
    record.id = store.put_model(&record)?;
    Ok(record)
}

/// Confirm a registered file is still the one that was hashed. Size and mtime are the fast
/// path; when either changed the file is hashed again and must match.
pub fn verify(record: &ModelRecord, full: bool) -> Result<(), ModelError> {
    let path = Path::new(&record.path);
    let meta = std::fs::metadata(path).map_err(io_err(path))?;
    if !full && meta.len() == record.size && mtime_ns(&meta) == record.mtime {
        return Ok(());
    }
    let actual = sha256_file(path)?;
    if actual != record.sha256 {
        return Err(ModelError::Checksum {
            path: path.to_path_buf(),
            expected: record.sha256.clone(),
            actual,
        });
    }
    Ok(())
}

/// Find a registered model by id, exact name, unique name prefix or path.
pub fn find(store: &Store, query: &str) -> Result<ModelRecord, ModelError> {
    let models = store.models()?;
    if let Ok(id) = query.parse::<ModelId>() {
        if let Some(m) = models.iter().find(|m| m.id == id) {
            return Ok(m.clone());
        }
    }
    if let Some(m) = models.iter().find(|m| m.name == query || m.path == query) {
        return Ok(m.clone());
    }
    if let Ok(canonical) = std::fs::canonicalize(query) {
        let canonical = canonical.to_string_lossy();
        if let Some(m) = models.iter().find(|m| m.path == canonical) {
            return Ok(m.clone());
        }
    }
    let prefixed: Vec<&ModelRecord> = models
        .iter()
        .filter(|m| m.name.starts_with(query))
        .collect();
    match prefixed.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(ModelError::NotFound(query.into())),
        many => Err(ModelError::Ambiguous {
            query: query.into(),
            matches: many.iter().map(|m| m.name.clone()).collect(),
        }),
    }
}

/// Make `record` the active model of its kind.
pub fn set_active(store: &Store, record: &ModelRecord) -> Result<(), ModelError> {
    let kind: ModelKind = record.kind.parse().map_err(|reason| ModelError::Invalid {
        path: PathBuf::from(&record.path),
        reason,
    })?;
    store.set_setting(&kind.setting_key(), &record.id.to_string())?;
    Ok(())
}

/// The active model of `kind`: the one chosen with `use`, else the only registered one.
pub fn active(store: &Store, kind: ModelKind) -> Result<Option<ModelRecord>, ModelError> {
    if let Some(id) = store
        .setting(&kind.setting_key())?
        .and_then(|v| v.parse::<ModelId>().ok())
    {
        if let Some(m) = store.model(id)? {
            return Ok(Some(m));
        }
    }
    let of_kind: Vec<ModelRecord> = store
        .models()?
        .into_iter()
        .filter(|m| m.kind == kind.as_str())
        .collect();
    Ok(if of_kind.len() == 1 {
        of_kind.into_iter().next()
    } else {
        None
    })
}

/// Where Ollama keeps models: `$OLLAMA_MODELS`, else `~/.ollama/models`, else the Linux
/// service's `/usr/share/ollama/.ollama/models`.
fn ollama_roots(home: &Path) -> Vec<PathBuf> {
    let mut roots = Vec::new();
    if let Some(dir) = std::env::var_os("OLLAMA_MODELS") {
        roots.push(PathBuf::from(dir));
    }
    roots.push(home.join(".ollama/models"));
    roots.push(PathBuf::from("/usr/share/ollama/.ollama/models"));
    roots
}

/// Where LM Studio keeps models (current and older layouts).
fn lmstudio_roots(home: &Path) -> Vec<PathBuf> {
    vec![
        home.join(".lmstudio/models"),
        home.join(".cache/lm-studio/models"),
    ]
}

/// GGUF models already on this machine in Ollama's and LM Studio's folders under `home`.
pub fn discover(home: &Path) -> Vec<Discovered> {
    let mut found = Vec::new();
    for root in ollama_roots(home) {
        found.extend(discover_ollama(&root));
    }
    for root in lmstudio_roots(home) {
        for entry in walkdir::WalkDir::new(&root)
            .follow_links(true)
            .max_depth(4)
            .into_iter()
            .filter_map(Result::ok)
        {
            let path = entry.path();
            let is_gguf = path
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("gguf"));
            // Vision projectors ship beside the model and are not models themselves.
            let is_projector = path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("mmproj"));
            if entry.file_type().is_file() && is_gguf && !is_projector {
                let name = path
                    .strip_prefix(&root)
                    .unwrap_or(path)
                    .to_string_lossy()
                    .into_owned();
                found.push(Discovered {
                    name,
                    path: path.to_path_buf(),
                    origin: "lmstudio".into(),
                    sha256: None,
                });
            }
        }
    }
    found.sort_by(|a, b| a.path.cmp(&b.path));
    found.dedup_by(|a, b| a.path == b.path);
    found
}

/// Ollama: `manifests/<registry>/<namespace>/<model>/<tag>` lists layers; the one of media type
/// `application/vnd.ollama.image.model` is the GGUF, stored as `blobs/sha256-<hex>`.
fn discover_ollama(root: &Path) -> Vec<Discovered> {
    let manifests = root.join("manifests");
    let mut found = Vec::new();
    for entry in walkdir::WalkDir::new(&manifests)
        .max_depth(4)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
    {
        let Ok(text) = std::fs::read_to_string(entry.path()) else {
            continue;
        };
        let Ok(manifest) = serde_json::from_str::<serde_json::Value>(&text) else {
            tracing::warn!(path = %entry.path().display(), "unreadable Ollama manifest");
            continue;
        };
        let Some(digest) = manifest["layers"].as_array().and_then(|layers| {
            layers
                .iter()
                .find(|l| l["mediaType"] == "application/vnd.ollama.image.model")
                .and_then(|l| l["digest"].as_str())
        }) else {
            continue;
        };
        let hex = digest.trim_start_matches("sha256:");
        let blob = root.join("blobs").join(format!("sha256-{hex}"));
        if !blob.is_file() {
            continue;
        }
        // …/<model>/<tag> → "model:tag", with the namespace when it is not the default library.
        let rel: Vec<String> = entry
            .path()
            .strip_prefix(&manifests)
            .unwrap_or(entry.path())
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        let name = match rel.as_slice() {
            [_, ns, model, tag] if ns == "library" => format!("{model}:{tag}"),
            [_, ns, model, tag] => format!("{ns}/{model}:{tag}"),
            other => other.join("/"),
        };
        found.push(Discovered {
            name,
            path: blob,
            origin: "ollama".into(),
            sha256: Some(hex.to_string()),
        });
    }
    found
}
