//! First run: a library with no embedding or chat model gets the embedded defaults
//! (`models/manifest.toml`) by itself, so that the first `twin import` or the first files
//! dropped on a fresh app just work.
//!
//! The defaults are looked for where a checkout or an installed app keeps them: a folder named
//! by `TWIN_MODELS_DIR`, `models/` of the checkout around the running executable
//! (`target/<profile>/twin`), `models/` under the current folder, and any folder the shell adds
//! (the app's bundled resources). The sentence-transformers embedding model is converted to GGUF
//! into the data folder on first use; the chat model is rewritten there with 8-bit weights
//! (see [`CHAT_WEIGHTS`]), or registered where it lies if that fails.

use crate::library::{Library, LibraryError};
use crate::models::{self, registry, ModelError, ModelKind};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// The embedded default embedding model: a sentence-transformers folder.
pub const EMBEDDING_FOLDER: &str = "all-MiniLM-L6-v2";
/// The embedded default chat model, as its package ships it.
pub const CHAT_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

/// The default chat model's file in the data folder: [`CHAT_FILE`] requantized to Q8_0.
/// llama.cpp has no repacked CPU kernels for Q4_1, so a CPU reads its prompts slowly; Q8_0
/// holds the Q4_1 values almost exactly. Measured on the sample writing (2 cores, held-out
/// split of 9 passages, 996 tokens): prompt reading 320 → 450 tok/s, held-out NLL 4.077 →
/// 4.084 (base) and 3.197 → 3.193 (voice adapter). Q4_0 read prompts at 510 tok/s but cost
/// +0.18 / +0.21 nats (a second 4-bit rounding), so it is not the default.
pub const CHAT_WEIGHTS: &str = "SmolLM2-135M-Instruct.Q8_0.gguf";

/// Errors from provisioning; each names the model concerned.
#[derive(Debug, thiserror::Error)]
pub enum FirstRunError {
    /// The library failed.
    #[error(transparent)]
    Library(#[from] LibraryError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// Registering a model failed.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// Converting the embedding model failed.
    #[error("{path}: converting the default embedding model failed: {reason}")]
    Convert {
        /// The model folder.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

crate::error::classify!(FirstRunError {
    kind: Self::Convert { .. } => BadInput;
    inner: Library, Store, Model;
    path: Self::Convert { path, .. } => path.as_path();
});

/// What [`provision`] did.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Provisioned {
    /// The embedding model set for the library (the converted GGUF), if one was.
    pub embedding: Option<PathBuf>,
    /// The chat model registered and made active, if one was.
    pub chat: Option<PathBuf>,
}

impl Provisioned {
    /// Whether anything was provisioned.
    pub fn any(&self) -> bool {
        self.embedding.is_some() || self.chat.is_some()
    }
}

/// Which defaults to provision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Needs {
    /// The embedding model (import, search, drafting).
    pub embedding: bool,
    /// The chat model (drafting, training).
    pub chat: bool,
}

/// Folders that may hold the embedded defaults, in the order they are tried: `TWIN_MODELS_DIR`,
/// the checkout around the executable, the current folder's `models/`, then `extra`.
pub fn search_dirs(extra: &[PathBuf]) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(d) = std::env::var_os("TWIN_MODELS_DIR") {
        dirs.push(PathBuf::from(d));
    }
    if let Ok(exe) = std::env::current_exe() {
        // <checkout>/target/<profile>/twin (or …/deps/<test binary>).
        for up in exe.ancestors().skip(1).take(4) {
            if up.file_name().is_some_and(|n| n == "target") {
                if let Some(root) = up.parent() {
                    dirs.push(root.join("models"));
                }
            }
        }
    }
    if let Ok(cwd) = std::env::current_dir() {
        dirs.push(cwd.join("models"));
    }
    dirs.extend(extra.iter().cloned());
    let mut seen = std::collections::HashSet::new();
    dirs.retain(|d| seen.insert(d.clone()));
    dirs
}

fn find_in(dirs: &[PathBuf], name: &str, want_dir: bool) -> Option<PathBuf> {
    dirs.iter()
        .map(|d| d.join(name))
        .find(|p| if want_dir { p.is_dir() } else { p.is_file() })
}

/// Give `library` what `needs` asks for and it lacks, from the defaults found in `dirs`. A
/// default that is not found is left out (the library's own error then says what to do).
pub fn provision(
    library: &mut Library,
    dirs: &[PathBuf],
    needs: Needs,
) -> Result<Provisioned, FirstRunError> {
    let mut done = Provisioned::default();
    if needs.embedding && library.store().embedding_model()?.is_none() {
        if let Some(folder) = find_in(dirs, EMBEDDING_FOLDER, true) {
            let _span =
                tracing::info_span!("first_run_embedding", folder = %folder.display()).entered();
            done.embedding = Some(provision_embedding(library, &folder)?);
        }
    }
    if needs.chat && registry::active(library.store(), ModelKind::Chat)?.is_none() {
        if let Some(file) = find_in(dirs, CHAT_FILE, false) {
            let _span = tracing::info_span!("first_run_chat", file = %file.display()).entered();
            let file = match requantized_chat(library.data_dir(), &file) {
                Ok(out) => out,
                Err(e) => {
                    tracing::warn!(error = %e, "keeping the default chat model's own weights");
                    file
                }
            };
            let record = registry::register(library.store(), &file, "default", None, None)?;
            registry::set_active(library.store(), &record)?;
            done.chat = Some(file);
        }
    }
    Ok(done)
}

/// `file` rewritten as [`CHAT_WEIGHTS`] in the data folder (kept if already there), through
/// a temporary name so an interrupted rewrite leaves nothing half-written behind.
fn requantized_chat(data_dir: &Path, file: &Path) -> Result<PathBuf, String> {
    let dir = data_dir.join("models");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let out = dir.join(CHAT_WEIGHTS);
    if !out.is_file() {
        let partial = partial_for(&dir, CHAT_WEIGHTS);
        crate::engine::requantize(
            file,
            &partial,
            crate::engine::QuantType::Q8_0,
            crate::engine::default_threads(),
        )
        .map_err(|e| e.to_string())?;
        put_in_place(&partial, &out).map_err(|e| format!("{}: {e}", out.display()))?;
    }
    Ok(out)
}

/// This process's name for `name` in `dir` while it is written. Two processes setting up one
/// data folder at once (a watcher and an import, both on first run) each write their own copy:
/// with one shared name, the first rename took the other's file away mid-write.
fn partial_for(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!(".{name}.{}.partial", std::process::id()))
}

/// Rename `partial` to `out`. Both processes' copies hold the same bytes, so the later rename
/// replacing the earlier is harmless; where the system refuses to replace a file, the one
/// already in place is kept.
fn put_in_place(partial: &Path, out: &Path) -> std::io::Result<()> {
    match std::fs::rename(partial, out) {
        Err(_) if out.is_file() => {
            let _ = std::fs::remove_file(partial);
            Ok(())
        }
        result => result,
    }
}

/// The default chat model's weights as first run makes them for `data_dir` (made now if they
/// are not there yet), from the default model found in `dirs`; `None` when it is not found.
pub fn default_chat_weights(data_dir: &Path, dirs: &[PathBuf]) -> Option<PathBuf> {
    let file = find_in(dirs, CHAT_FILE, false)?;
    requantized_chat(data_dir, &file).ok()
}

/// Make the default embedding model, found in `dirs`, the embedding model of `library` (a
/// library whose recorded model file is gone); `None` when it is not found.
pub fn default_embedding(
    library: &mut Library,
    dirs: &[PathBuf],
) -> Result<Option<PathBuf>, FirstRunError> {
    match find_in(dirs, EMBEDDING_FOLDER, true) {
        Some(folder) => Ok(Some(provision_embedding(library, &folder)?)),
        None => Ok(None),
    }
}

/// Convert the sentence-transformers `folder` into the data folder and make it the library's
/// embedding model. The conversion goes to a temporary name first, so an interrupted one
/// leaves no half-written model behind.
fn provision_embedding(library: &mut Library, folder: &Path) -> Result<PathBuf, FirstRunError> {
    let dir = library.data_dir().join("models");
    std::fs::create_dir_all(&dir).map_err(|source| ModelError::Io {
        path: dir.clone(),
        source,
    })?;
    let out = dir.join(format!("{EMBEDDING_FOLDER}.f16.gguf"));
    if !out.is_file() {
        let partial = partial_for(&dir, &format!("{EMBEDDING_FOLDER}.f16.gguf"));
        models::convert_sentence_transformer(
            folder,
            &partial,
            &models::ConvertOptions { f16: true },
        )
        .map_err(|e| FirstRunError::Convert {
            path: folder.to_path_buf(),
            reason: e.to_string(),
        })?;
        put_in_place(&partial, &out).map_err(|source| ModelError::Io {
            path: out.clone(),
            source,
        })?;
    }
    library.set_embedding_model(&out)?;
    registry::register(
        library.store(),
        &out,
        "converted",
        Some(EMBEDDING_FOLDER),
        None,
    )?;
    Ok(out)
}
