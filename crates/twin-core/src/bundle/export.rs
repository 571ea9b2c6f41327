//! Writing a bundle.

use super::*;
use crate::draft::style;
use crate::library::Library;
use crate::models::{self, registry, ModelKind};
use crate::progress::{CancelToken, Progress, ProgressEvent, Stage};
use crate::store::{ExampleRecord, Split};
use sha2::{Digest, Sha256};
use std::collections::{BTreeSet, HashMap};
use std::io::{Read, Write};

/// What an export wrote.
#[derive(Clone, Debug, Serialize, ts_rs::TS)]
#[ts(export)]
pub struct Exported {
    /// The bundle.
    pub path: PathBuf,
    /// Its size in bytes.
    pub size: u64,
    /// What it holds.
    pub manifest: Manifest,
    /// Adapters left out because they were trained on another base model than the active one.
    pub left_out: Vec<String>,
}

/// Bundle the twin of `library` (the active chat model's adapters, history, style card and
/// settings; the library itself when `with_library`) into `out`. Written beside `out` first
/// and renamed, so a cancelled or failed export leaves no half bundle.
pub fn export(
    library: &Library,
    out: &Path,
    with_library: bool,
    progress: &dyn Progress,
    cancel: &CancelToken,
) -> Result<Exported, BundleError> {
    let _span = tracing::info_span!("bundle_export", with_library).entered();
    let store = library.store();
    let base = registry::active(store, ModelKind::Chat)?.ok_or_else(|| {
        BundleError::NotPossible(
            "no chat model is active, so there is no twin to export: import writing first".into(),
        )
    })?;
    let mut adapters = store.adapters()?;
    adapters.reverse();
    let (kept, other): (Vec<_>, Vec<_>) = adapters
        .into_iter()
        .partition(|a| a.base_sha256 == base.sha256);
    let by_path: HashMap<&str, i64> = kept.iter().map(|a| (a.path.as_str(), a.id)).collect();
    let bundled: Vec<BundledAdapter> = kept
        .iter()
        .map(|a| {
            let file_name = Path::new(&a.path).file_name().map_or_else(
                || "adapter.gguf".into(),
                |n| n.to_string_lossy().into_owned(),
            );
            BundledAdapter {
                source_id: a.id,
                parent: a.params["init_adapter"]
                    .as_str()
                    .and_then(|p| by_path.get(p).copied()),
                file: format!("{ADAPTERS_DIR}/{}-{file_name}", a.id),
                record: a.clone(),
            }
        })
        .collect();
    let activations = store
        .activations()?
        .into_iter()
        .filter(|a| {
            a.adapter
                .is_none_or(|id| by_path.values().any(|k| *k == id))
        })
        .map(|a| BundledActivation {
            channel: a.channel,
            adapter: a.adapter,
            scale: a.scale,
            at: a.at,
        })
        .collect();
    let dataset_ids: BTreeSet<&str> = kept.iter().map(|a| a.dataset_id.as_str()).collect();
    let mut datasets = Vec::new();
    for id in dataset_ids {
        let held_out: BTreeSet<String> = store
            .dataset_examples(id)?
            .into_iter()
            .filter(|e: &ExampleRecord| e.split == Split::Test)
            .filter_map(|e| e.document_path)
            .collect();
        datasets.push(BundledDataset {
            id: id.to_string(),
            held_out: held_out.into_iter().collect(),
        });
    }
    let settings = store
        .all_settings()?
        .into_iter()
        .filter(|(k, _)| carried(k))
        .collect();
    let style_card = BundledStyleCard {
        text: style::card(store)?.text,
        edited: store.setting(style::STYLE_CARD_SETTING)?.is_some(),
    };
    let embedding_model = store.embedding_model()?.map(|m| EmbeddingModel {
        name: m.name,
        hash: m.hash,
        dim: m.dim,
    });

    // The files: adapters, then the library snapshot.
    let partial = out.with_extension(format!("{EXTENSION}.partial"));
    let snapshot = out.with_extension(format!("{EXTENSION}.library.partial"));
    let mut sources: Vec<(String, PathBuf)> = bundled
        .iter()
        .map(|b| (b.file.clone(), PathBuf::from(&b.record.path)))
        .collect();
    if with_library {
        let _ = std::fs::remove_file(&snapshot);
        store.snapshot_to(&snapshot)?;
        sources.push((LIBRARY_ENTRY.to_string(), snapshot.clone()));
    }
    let written = write_archive(&partial, &sources, progress, cancel);
    let _ = std::fs::remove_file(&snapshot);
    let files = match written {
        Ok(files) => files,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e);
        }
    };
    for b in &bundled {
        let entry = files.iter().find(|f| f.path == b.file);
        if entry.is_some_and(|f| f.sha256 != b.record.sha256) {
            let _ = std::fs::remove_file(&partial);
            return Err(BundleError::Damaged {
                path: PathBuf::from(&b.record.path),
                reason: "the adapter file changed since it was trained (its sha256 differs \
                         from the registry's); retrain or remove it"
                    .into(),
            });
        }
    }
    let manifest = Manifest {
        format: FORMAT.into(),
        format_version: FORMAT_VERSION,
        twin_version: env!("CARGO_PKG_VERSION").into(),
        created_at: crate::store::now_secs(),
        base_model: BaseModel {
            name: base.name.clone(),
            sha256: base.sha256.clone(),
            size: base.size,
            architecture: base.architecture.clone(),
            path: base.path.clone(),
        },
        embedding_model,
        adapters: bundled,
        activations,
        style_card,
        settings,
        datasets,
        library: files.iter().find(|f| f.path == LIBRARY_ENTRY).cloned(),
        files,
    };
    let finished = append_manifest(&partial, &manifest)
        .and_then(|()| std::fs::rename(&partial, out).map_err(io_error(out)));
    if let Err(e) = finished {
        let _ = std::fs::remove_file(&partial);
        return Err(e);
    }
    let size = std::fs::metadata(out).map_err(io_error(out))?.len();
    Ok(Exported {
        path: out.to_path_buf(),
        size,
        manifest,
        left_out: other
            .iter()
            .map(|a| format!("{} (trained on {})", a.name, a.base_name))
            .collect(),
    })
}

fn zip_error(path: &Path) -> impl FnOnce(zip::result::ZipError) -> BundleError + '_ {
    move |e| match e {
        zip::result::ZipError::Io(source) => BundleError::Io {
            path: path.to_path_buf(),
            source,
        },
        other => BundleError::Damaged {
            path: path.to_path_buf(),
            reason: other.to_string(),
        },
    }
}

fn options(size: u64) -> zip::write::SimpleFileOptions {
    zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .large_file(size >= u32::MAX as u64)
}

/// Write `sources` (archive entry, file) into a new archive at `path`, hashing each as it is
/// copied; the archive is left open for the manifest ([`append_manifest`]).
fn write_archive(
    path: &Path,
    sources: &[(String, PathBuf)],
    progress: &dyn Progress,
    cancel: &CancelToken,
) -> Result<Vec<FileEntry>, BundleError> {
    let total: u64 = sources
        .iter()
        .map(|(_, p)| std::fs::metadata(p).map_or(0, |m| m.len()))
        .sum();
    let file = std::fs::File::create(path).map_err(io_error(path))?;
    let mut zip = zip::ZipWriter::new(std::io::BufWriter::new(file));
    let mut done = 0u64;
    let mut entries = Vec::new();
    let mut buf = vec![0u8; 1 << 20];
    for (entry, source) in sources {
        let mut input = std::fs::File::open(source).map_err(io_error(source))?;
        let size = input.metadata().map_err(io_error(source))?.len();
        zip.start_file(entry.as_str(), options(size))
            .map_err(zip_error(path))?;
        let mut hasher = Sha256::new();
        let mut copied = 0u64;
        loop {
            if cancel.is_cancelled() {
                return Err(BundleError::Cancelled);
            }
            let n = input.read(&mut buf).map_err(io_error(source))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            zip.write_all(&buf[..n]).map_err(io_error(path))?;
            copied += n as u64;
            done += n as u64;
            progress.report(ProgressEvent {
                stage: Stage::Bundle,
                done,
                total,
                item: Some(entry.clone()),
            });
        }
        entries.push(FileEntry {
            path: entry.clone(),
            sha256: format!("{:x}", hasher.finalize()),
            size: copied,
        });
    }
    zip.finish().map_err(zip_error(path))?;
    Ok(entries)
}

/// Add `manifest.json` to the archive at `path`.
fn append_manifest(path: &Path, manifest: &Manifest) -> Result<(), BundleError> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(io_error(path))?;
    let mut zip = zip::ZipWriter::new_append(file).map_err(zip_error(path))?;
    let json = serde_json::to_vec_pretty(manifest).map_err(|e| BundleError::Damaged {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    zip.start_file(MANIFEST_ENTRY, options(json.len() as u64))
        .map_err(zip_error(path))?;
    zip.write_all(&json).map_err(io_error(path))?;
    let file = zip.finish().map_err(zip_error(path))?;
    file.sync_all().map_err(io_error(path))?;
    Ok(())
}

/// The sha256 of the file at `path`, hex (the registry's hash, shared).
pub(super) fn sha256_of(path: &Path) -> Result<String, BundleError> {
    Ok(models::registry::sha256_file(path)?)
}
