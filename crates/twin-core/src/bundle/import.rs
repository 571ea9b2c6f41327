//! Reading a bundle into a data folder.

use super::export::sha256_of;
use super::*;
use crate::draft::style;
use crate::engine::EmbedderConfig;
use crate::first_run;
use crate::library::{Library, DATABASE_FILE};
use crate::models::registry;
use crate::progress::{CancelToken, Progress, ProgressEvent, Stage};
use crate::store::{Activation, Store};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::{Read, Write};

/// The manifest's size limit: a manifest is a few kilobytes; more is not a bundle.
const MANIFEST_LIMIT: u64 = 16 << 20;
/// Where files are checked before they are put in place.
const STAGING_DIR: &str = ".bundle-import";

/// What an import did.
#[derive(Clone, Debug, Serialize, ts_rs::TS)]
#[ts(export)]
pub struct Imported {
    /// What the bundle held.
    pub manifest: Manifest,
    /// The base model file it runs on here.
    pub base_model: PathBuf,
    /// Adapters registered (those already here are not registered twice).
    pub adapters: usize,
    /// Whether the library came with it.
    pub library: bool,
    /// Whether the library's chunks must be embedded again (its embedding model was not here
    /// and the default one differs).
    pub reembed: bool,
}

/// Import the bundle at `bundle` into `data_dir`: the base model is looked for in `model` (the
/// user's pointer), the models registered here, the path it had, then the default model set up
/// from `dirs`. A bundle with its library needs a data folder without one. Nothing is stored
/// unless every file matches its sha256 and the base model is found.
pub fn import(
    bundle: &Path,
    data_dir: &Path,
    model: Option<&Path>,
    dirs: &[PathBuf],
    embed_config: EmbedderConfig,
    progress: &dyn Progress,
    cancel: &CancelToken,
) -> Result<Imported, BundleError> {
    let _span = tracing::info_span!("bundle_import", bundle = %bundle.display()).entered();
    let file = std::fs::File::open(bundle).map_err(io_error(bundle))?;
    let mut zip = zip::ZipArchive::new(file)
        .map_err(|e| damaged(bundle, format!("not a Twin bundle: {e}")))?;
    let manifest = read_manifest(bundle, &mut zip)?;
    let database = data_dir.join(DATABASE_FILE);
    if manifest.library.is_some() && database.exists() {
        return Err(BundleError::NotPossible(format!(
            "{} already holds a library; import a bundle with its library into an empty data \
             folder, or export the twin without --with-library to add it to this library",
            data_dir.display()
        )));
    }
    let staging = data_dir.join(STAGING_DIR);
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging).map_err(io_error(&staging))?;
    let result = (|| {
        let staged = stage_files(bundle, &mut zip, &manifest, &staging, progress, cancel)?;
        let base = find_base(&manifest.base_model, model, &database, data_dir, dirs)?;
        place(&manifest, staged, &base, data_dir, dirs, embed_config)
    })();
    let _ = std::fs::remove_dir_all(&staging);
    result
}

fn damaged(path: &Path, reason: impl Into<String>) -> BundleError {
    BundleError::Damaged {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

fn read_manifest(
    bundle: &Path,
    zip: &mut zip::ZipArchive<std::fs::File>,
) -> Result<Manifest, BundleError> {
    let entry = zip
        .by_name(MANIFEST_ENTRY)
        .map_err(|_| damaged(bundle, "not a Twin bundle: it has no manifest.json"))?;
    let mut text = Vec::new();
    entry
        .take(MANIFEST_LIMIT)
        .read_to_end(&mut text)
        .map_err(io_error(bundle))?;
    // The version first, so a newer bundle is refused for what it is, not as unreadable.
    let head: serde_json::Value = serde_json::from_slice(&text)
        .map_err(|e| damaged(bundle, format!("manifest.json is not JSON: {e}")))?;
    if head["format"] != FORMAT {
        return Err(damaged(
            bundle,
            "not a Twin bundle (manifest format is not twin-bundle)",
        ));
    }
    let version = head["format_version"].as_u64().unwrap_or(0) as u32;
    if version > FORMAT_VERSION {
        return Err(BundleError::Newer {
            path: bundle.to_path_buf(),
            found: version,
        });
    }
    serde_json::from_value(head).map_err(|e| damaged(bundle, format!("manifest.json: {e}")))
}

/// Copy every file the manifest lists into `staging`, checking size and sha256 as it goes; the
/// staged path of each entry.
fn stage_files(
    bundle: &Path,
    zip: &mut zip::ZipArchive<std::fs::File>,
    manifest: &Manifest,
    staging: &Path,
    progress: &dyn Progress,
    cancel: &CancelToken,
) -> Result<HashMap<String, PathBuf>, BundleError> {
    let total: u64 = manifest.files.iter().map(|f| f.size).sum();
    let mut done = 0u64;
    let mut staged = HashMap::new();
    let mut buf = vec![0u8; 1 << 20];
    for (i, file) in manifest.files.iter().enumerate() {
        // Staged under a name of our own: entry names come from the archive.
        let target = staging.join(format!("{i}.part"));
        let entry = zip
            .by_name(&file.path)
            .map_err(|_| damaged(bundle, format!("{} is listed but missing", file.path)))?;
        let mut entry = entry.take(file.size + 1);
        let mut out = std::fs::File::create(&target).map_err(io_error(&target))?;
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        loop {
            if cancel.is_cancelled() {
                return Err(BundleError::Cancelled);
            }
            let n = entry
                .read(&mut buf)
                .map_err(|e| damaged(bundle, format!("{}: {e}", file.path)))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n]).map_err(io_error(&target))?;
            size += n as u64;
            done += n as u64;
            progress.report(ProgressEvent {
                stage: Stage::Bundle,
                done: done.min(total),
                total,
                item: Some(file.path.clone()),
            });
        }
        let sha256 = format!("{:x}", hasher.finalize());
        if size != file.size || sha256 != file.sha256 {
            return Err(damaged(
                bundle,
                format!(
                    "{} does not match its checksum (the bundle is damaged; export it again)",
                    file.path
                ),
            ));
        }
        out.sync_all().map_err(io_error(&target))?;
        staged.insert(file.path.clone(), target);
    }
    Ok(staged)
}

/// The base model's file on this machine, by sha256.
fn find_base(
    base: &BaseModel,
    model: Option<&Path>,
    database: &Path,
    data_dir: &Path,
    dirs: &[PathBuf],
) -> Result<PathBuf, BundleError> {
    let matches = |path: &Path| -> Result<bool, BundleError> {
        let size = std::fs::metadata(path).map(|m| m.len()).ok();
        Ok(size == Some(base.size) && sha256_of(path)? == base.sha256)
    };
    if let Some(path) = model {
        if !path.is_file() {
            return Err(BundleError::Io {
                path: path.to_path_buf(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
            });
        }
        if matches(path)? {
            return Ok(path.to_path_buf());
        }
        return Err(damaged(
            path,
            format!(
                "this is not the twin's base model {} (its sha256 differs); adapters only run on \
                 the exact file they were trained on",
                base.name
            ),
        ));
    }
    if database.exists() {
        let store = Store::open(database)?;
        for m in store.models()? {
            if m.sha256 == base.sha256 && Path::new(&m.path).is_file() {
                return Ok(PathBuf::from(m.path));
            }
        }
    }
    let recorded = Path::new(&base.path);
    if recorded.is_file() && matches(recorded)? {
        return Ok(recorded.to_path_buf());
    }
    if let Some(default) = first_run::default_chat_weights(data_dir, dirs) {
        if matches(&default)? {
            return Ok(default);
        }
    }
    Err(BundleError::MissingBase {
        name: base.name.clone(),
        sha256: base.sha256.clone(),
    })
}

/// Put the checked files in place and register the twin in the data folder's library.
fn place(
    manifest: &Manifest,
    mut staged: HashMap<String, PathBuf>,
    base: &Path,
    data_dir: &Path,
    dirs: &[PathBuf],
    embed_config: EmbedderConfig,
) -> Result<Imported, BundleError> {
    if let Some(entry) = &manifest.library {
        let from = staged
            .remove(&entry.path)
            .ok_or_else(|| damaged(data_dir, "the library snapshot was not staged"))?;
        let database = data_dir.join(DATABASE_FILE);
        std::fs::rename(&from, &database).map_err(io_error(&database))?;
    }
    let mut library = Library::open(data_dir, embed_config)?;
    let mut reembed = false;
    // The library's embedding model: its file may not be on this machine.
    let embedding_gone = library
        .store()
        .embedding_model()?
        .is_some_and(|m| !Path::new(&m.path).exists());
    if embedding_gone || library.store().embedding_model()?.is_none() {
        let before = library.store().embedding_model()?.map(|m| m.hash);
        first_run::default_embedding(&mut library, dirs)?;
        let after = library.store().embedding_model()?.map(|m| m.hash);
        reembed = before.is_some() && before != after;
    }
    let store = library.store();
    // The base model, registered at its place here and made the active chat model; records of
    // it at a path that is gone (the other machine's) are dropped.
    let record = registry::register(
        store,
        base,
        "bundle",
        Some(&manifest.base_model.name),
        Some(&manifest.base_model.sha256),
    )?;
    for m in store.models()? {
        if m.sha256 == record.sha256 && m.id != record.id && !Path::new(&m.path).exists() {
            store.remove_model(m.id)?;
        }
    }
    registry::set_active(store, &record)?;

    // Adapters: moved into the data folder, registered (or, with the library, relocated).
    let adapters_dir = data_dir.join("adapters");
    std::fs::create_dir_all(&adapters_dir).map_err(io_error(&adapters_dir))?;
    let existing = store.adapters()?;
    let mut new_paths: HashMap<i64, String> = HashMap::new();
    for a in &manifest.adapters {
        let from = staged
            .remove(&a.file)
            .ok_or_else(|| damaged(data_dir, format!("{} was not staged", a.file)))?;
        let name = Path::new(&a.record.path).file_name().map_or_else(
            || format!("adapter-{}.gguf", a.source_id),
            |n| n.to_string_lossy().into_owned(),
        );
        let mut target = adapters_dir.join(&name);
        if target.exists() && sha256_of(&target)? != a.record.sha256 {
            target = adapters_dir.join(format!("imported-{}-{name}", manifest.created_at));
        }
        if !target.exists() {
            std::fs::rename(&from, &target).map_err(io_error(&target))?;
        }
        new_paths.insert(a.source_id, target.to_string_lossy().into_owned());
    }
    let with_params = |a: &BundledAdapter| {
        let mut params = a.record.params.clone();
        if let Some(parent) = a.parent.and_then(|p| new_paths.get(&p)) {
            params["init_adapter"] = serde_json::Value::String(parent.clone());
        }
        params
    };
    let mut registered = 0;
    if manifest.library.is_some() {
        let kept: Vec<i64> = manifest.adapters.iter().map(|a| a.source_id).collect();
        for a in store.adapters()? {
            if !kept.contains(&a.id) {
                // Trained on another base model and left out of the bundle: its file is not here.
                store.remove_adapter(a.id)?;
            }
        }
        for a in &manifest.adapters {
            store.relocate_adapter(a.source_id, &new_paths[&a.source_id], &with_params(a))?;
            registered += 1;
        }
    } else {
        let mut ids: HashMap<i64, i64> = HashMap::new();
        for a in &manifest.adapters {
            if let Some(same) = existing.iter().find(|e| e.sha256 == a.record.sha256) {
                ids.insert(a.source_id, same.id);
                continue;
            }
            let mut record = a.record.clone();
            record.path = new_paths[&a.source_id].clone();
            record.params = with_params(a);
            ids.insert(a.source_id, store.put_adapter(&record)?);
            registered += 1;
        }
        for act in &manifest.activations {
            let adapter = match act.adapter {
                Some(source) => match ids.get(&source) {
                    Some(id) => Some(*id),
                    None => continue,
                },
                None => None,
            };
            store.put_activation(&Activation {
                channel: act.channel.clone(),
                adapter,
                scale: act.scale,
                at: act.at,
            })?;
        }
        for (key, value) in &manifest.settings {
            if carried(key) {
                store.set_setting(key, value)?;
            }
        }
        // The voice's card travels with the twin when the user wrote it, or when there is no
        // writing here to compute it from.
        if manifest.style_card.edited || store.stats()?.documents == 0 {
            store.set_setting(style::STYLE_CARD_SETTING, &manifest.style_card.text)?;
        }
    }
    // The manifest is kept: held-out documents and lineage stay on record.
    let kept = data_dir.join("bundles");
    std::fs::create_dir_all(&kept).map_err(io_error(&kept))?;
    let copy = kept.join(format!("imported-{}.json", manifest.created_at));
    let json = serde_json::to_vec_pretty(manifest).map_err(|e| damaged(&copy, e.to_string()))?;
    std::fs::write(&copy, json).map_err(io_error(&copy))?;
    Ok(Imported {
        manifest: manifest.clone(),
        base_model: base.to_path_buf(),
        adapters: registered,
        library: manifest.library.is_some(),
        reembed,
    })
}
