//! Checkpoints: the run's key, and the tensors and state written so that a run killed at any
//! moment resumes from its last complete checkpoint.

use super::*;

/// What the JSON beside a checkpoint holds.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct CheckpointState {
    pub(super) step: usize,
    pub(super) tensors: String,
    pub(super) best_eval: f64,
    pub(super) base_eval: f64,
    pub(super) best_step: usize,
    pub(super) evals_without_gain: usize,
    pub(super) history: Vec<HistoryPoint>,
    pub(super) tokens: u64,
}

pub(super) fn run_key(base_sha256: &str, dataset: &str, params: &TrainParams) -> String {
    let mut h = blake3::Hasher::new();
    h.update(base_sha256.as_bytes());
    h.update(dataset.as_bytes());
    h.update(serde_json::to_string(params).unwrap_or_default().as_bytes());
    h.finalize().to_hex()[..16].to_string()
}

pub(super) fn snapshot(vars: &[(String, candle_core::Var)]) -> Result<Vec<Tensor>, TrainError> {
    Ok(vars
        .iter()
        .map(|(_, v)| v.as_tensor().copy())
        .collect::<Result<Vec<_>, _>>()?)
}

pub(super) fn io(path: &Path) -> impl Fn(std::io::Error) -> TrainError + '_ {
    move |source| TrainError::Io {
        path: path.to_path_buf(),
        source,
    }
}

pub(super) fn write_checkpoint(
    dir: &Path,
    state: &CheckpointState,
    vars: &[(String, candle_core::Var)],
    best: &[Tensor],
    optimizer: &AdamW,
) -> Result<(), TrainError> {
    let mut tensors: HashMap<String, Tensor> = optimizer.state();
    for (i, (name, var)) in vars.iter().enumerate() {
        tensors.insert(name.clone(), var.as_tensor().clone());
        tensors.insert(format!("best.{name}"), best[i].clone());
    }
    // Every file is written beside its final name, flushed to disk, then renamed over it: a
    // kill at any instant leaves either the old checkpoint or the new one, never a torn file
    // that `checkpoint.json` points to (a cancel right after a checkpoint rewrites the same
    // step's file).
    let file = dir.join(&state.tensors);
    let partial = dir.join(format!("{}.partial", state.tensors));
    candle_core::safetensors::save(&tensors, &partial)?;
    sync_file(&partial)?;
    std::fs::rename(&partial, &file).map_err(io(&file))?;
    let json = dir.join("checkpoint.json");
    let tmp = dir.join("checkpoint.json.partial");
    let text =
        serde_json::to_string_pretty(state).map_err(|e| TrainError::Checkpoint(e.to_string()))?;
    std::fs::write(&tmp, text).map_err(io(&tmp))?;
    sync_file(&tmp)?;
    std::fs::rename(&tmp, &json).map_err(io(&json))?;
    // The renames themselves reach the disk with the folder.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    // Older tensor files are no longer named by the state.
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("checkpoint-") && name != state.tensors {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    Ok(())
}

/// A checkpoint's state and its tensors by name.
pub(super) type Checkpoint = (CheckpointState, HashMap<String, Tensor>);

pub(super) fn sync_file(path: &Path) -> Result<(), TrainError> {
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(io(path))
}

/// The run's last checkpoint, or `None` to start from step 0: also when it cannot be read (a
/// checkpoint left by an older build, or a disk fault), so a damaged checkpoint costs the
/// steps since the start, never every retry.
pub(super) fn read_checkpoint(
    dir: &Path,
    device: &candle_core::Device,
) -> Result<Option<Checkpoint>, TrainError> {
    let json = dir.join("checkpoint.json");
    let Ok(text) = std::fs::read_to_string(&json) else {
        return Ok(None);
    };
    let state: CheckpointState = match serde_json::from_str(&text) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("{}: {e}; starting the run over", json.display());
            return Ok(None);
        }
    };
    match candle_core::safetensors::load(dir.join(&state.tensors), device) {
        Ok(tensors) => Ok(Some((state, tensors))),
        Err(e) => {
            tracing::warn!("{}: {e}; starting the run over", state.tensors);
            Ok(None)
        }
    }
}

/// The sha256 and size of the adapter file just written (one hashing routine for every file).
pub(super) fn sha256_file(path: &Path) -> Result<(String, u64), TrainError> {
    let sha = crate::models::registry::sha256_file(path).map_err(|e| TrainError::Io {
        path: path.to_path_buf(),
        source: std::io::Error::other(e.to_string()),
    })?;
    let size = std::fs::metadata(path).map_err(io(path))?.len();
    Ok((sha, size))
}
