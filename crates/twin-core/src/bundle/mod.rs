//! Twin bundles: a trained twin in one file, to move it to another machine or keep it.
//!
//! A bundle (`*.twinpkg`) is a zip archive:
//! - `manifest.json` ([`Manifest`]): format version, Twin's version, the base model's name and
//!   sha256, each adapter with its lineage and scores, the channels' adapter history, the style
//!   card, the settings, each dataset's held-out document ids, and every file's sha256;
//! - `adapters/<file>.gguf`: the adapters trained on the base model;
//! - `library.sqlite` (with `--with-library`): a consistent snapshot of the library database
//!   (writing, vectors, datasets, traces), so the twin drafts from the same writing.
//!
//! The base model is never bundled (hundreds of megabytes, and fetched, never made): import
//! finds it by sha256 (a model given by the user, one already registered, the path it had, or
//! the default model set up afresh) and refuses cleanly when it is nowhere. Every file is
//! checked against its sha256 before anything is stored; a bundle from a newer format is
//! refused before anything is read.

mod export;
mod import;

pub use export::{export, Exported};
pub use import::{import, Imported};

use crate::store::AdapterRecord;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The manifest's `format`.
pub const FORMAT: &str = "twin-bundle";
/// The newest format version this Twin writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// A bundle's file extension.
pub const EXTENSION: &str = "twinpkg";
const MANIFEST_ENTRY: &str = "manifest.json";
const LIBRARY_ENTRY: &str = "library.sqlite";
const ADAPTERS_DIR: &str = "adapters";
/// Whether the setting `key` belongs to the twin and travels with it (the author's name, the
/// names that pick their posts out of exports, automatic training); the machine's (threads,
/// GPU layers, the API's port), the library's (active model ids, caches) stay.
fn carried(key: &str) -> bool {
    key == "app.author" || key == "library.authors" || key.starts_with("autotrain.")
}

/// What a bundle holds, written first in the archive.
#[derive(Clone, Debug, Serialize, Deserialize, ts_rs::TS)]
#[ts(export)]
pub struct Manifest {
    /// Always [`FORMAT`].
    pub format: String,
    /// The format's version ([`FORMAT_VERSION`] when written by this Twin).
    pub format_version: u32,
    /// The Twin that wrote it.
    pub twin_version: String,
    /// Unix time.
    pub created_at: i64,
    /// The chat model the adapters were trained on.
    pub base_model: BaseModel,
    /// The library's embedding model (its vectors are only valid with it).
    pub embedding_model: Option<EmbeddingModel>,
    /// The adapters, oldest first.
    pub adapters: Vec<BundledAdapter>,
    /// The channels' adapter choices, oldest first (rollback walks back through them).
    pub activations: Vec<BundledActivation>,
    /// The style card in use.
    pub style_card: BundledStyleCard,
    /// The twin's settings (author, names, automatic training), without the machine's.
    pub settings: BTreeMap<String, String>,
    /// The datasets the adapters were trained on, with their held-out documents.
    pub datasets: Vec<BundledDataset>,
    /// The library snapshot, if bundled.
    pub library: Option<FileEntry>,
    /// Every file but the manifest.
    pub files: Vec<FileEntry>,
}

/// The base chat model, identified by content.
#[derive(Clone, Debug, Serialize, Deserialize, ts_rs::TS)]
#[ts(export)]
pub struct BaseModel {
    /// Its registered name.
    pub name: String,
    /// sha256 of the GGUF file: what an adapter needs is this exact file.
    pub sha256: String,
    /// File size in bytes.
    pub size: u64,
    /// Architecture, if known.
    pub architecture: Option<String>,
    /// Where it was on the machine that wrote the bundle.
    pub path: String,
}

/// The library's embedding model.
#[derive(Clone, Debug, Serialize, Deserialize, ts_rs::TS)]
#[ts(export)]
pub struct EmbeddingModel {
    /// Its name.
    pub name: String,
    /// Its content hash, as the store records it.
    pub hash: String,
    /// Vector size.
    pub dim: usize,
}

/// An adapter in a bundle.
#[derive(Clone, Debug, Serialize, Deserialize, ts_rs::TS)]
#[ts(export)]
pub struct BundledAdapter {
    /// Its id in the library that wrote the bundle (activations and lineage refer to it).
    pub source_id: i64,
    /// The adapter it was trained from, if any (`source_id`).
    pub parent: Option<i64>,
    /// Its archive entry.
    pub file: String,
    /// The registry's record: name, base, dataset, parameters, scores, sha256.
    pub record: AdapterRecord,
}

/// A channel's adapter choice in a bundle.
#[derive(Clone, Debug, Serialize, Deserialize, ts_rs::TS)]
#[ts(export)]
pub struct BundledActivation {
    /// The channel.
    pub channel: String,
    /// The adapter (`source_id`); `None` for the base model alone.
    pub adapter: Option<i64>,
    /// Strength.
    pub scale: f32,
    /// Unix time.
    pub at: i64,
}

/// The style card.
#[derive(Clone, Debug, Serialize, Deserialize, ts_rs::TS)]
#[ts(export)]
pub struct BundledStyleCard {
    /// Its text.
    pub text: String,
    /// Whether the user wrote or edited it (otherwise it is computed from the library).
    pub edited: bool,
}

/// A dataset's version and its held-out split.
#[derive(Clone, Debug, Serialize, Deserialize, ts_rs::TS)]
#[ts(export)]
pub struct BundledDataset {
    /// The dataset's id.
    pub id: String,
    /// The documents held out of training (evaluation keeps measuring on them).
    pub held_out: Vec<String>,
}

/// A file in a bundle.
#[derive(Clone, Debug, Serialize, Deserialize, ts_rs::TS)]
#[ts(export)]
pub struct FileEntry {
    /// Its archive entry.
    pub path: String,
    /// sha256, hex.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
}

/// Why a bundle could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// The archive is not a bundle, or is damaged.
    #[error("{path}: {reason}")]
    Damaged {
        /// The bundle.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Written by a newer Twin.
    #[error(
        "{path}: bundle format {found} is newer than this Twin reads ({FORMAT_VERSION}); update Twin to import it"
    )]
    Newer {
        /// The bundle.
        path: PathBuf,
        /// Its format version.
        found: u32,
    },
    /// The base model is not on this machine.
    #[error(
        "the twin's base model {name} (sha256 {sha256}) is not on this machine: point at the file \
         with --model <file.gguf> (Settings → Import twin → Choose model), or pull it with \
         `twin models pull`, then import again"
    )]
    MissingBase {
        /// Its name.
        name: String,
        /// Its sha256.
        sha256: String,
    },
    /// Something to export or import into is missing or in the way.
    #[error("{0}")]
    NotPossible(String),
    /// The library.
    #[error(transparent)]
    Library(#[from] crate::library::LibraryError),
    /// The store.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The model registry.
    #[error(transparent)]
    Model(#[from] crate::models::ModelError),
    /// Setting up a default model.
    #[error(transparent)]
    FirstRun(#[from] crate::first_run::FirstRunError),
    /// The user cancelled; nothing was stored.
    #[error("cancelled")]
    Cancelled,
}

crate::error::classify!(BundleError {
    kind: Self::Io { .. } => Io, Self::Damaged { .. } => BadInput, Self::Newer { .. } => BadInput,
        Self::MissingBase { .. } => NotFound, Self::NotPossible(_) => NeedsSetup,
        Self::Cancelled => Cancelled;
    inner: Library, Store, Model, FirstRun;
    path: Self::Io { path, .. } => path.as_path(), Self::Damaged { path, .. } => path.as_path(),
        Self::Newer { path, .. } => path.as_path();
});

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> BundleError + '_ {
    move |source| BundleError::Io {
        path: path.to_path_buf(),
        source,
    }
}
