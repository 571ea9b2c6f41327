//! Writing a trained adapter as the GGUF LoRA file llama.cpp loads next to the base model.
//!
//! llama.cpp's rules (src/llama-adapter.cpp): `general.type` = `adapter`,
//! `general.architecture` equal to the base model's, `adapter.type` = `lora`,
//! `adapter.lora.alpha` as f32 (missing reads as 0 and changes the scale), tensors named
//! `<base tensor>.lora_a` with ne = [n_in, r] and `.lora_b` with ne = [r, n_out]. In row-major
//! terms A is (r, in) and B is (out, r), exactly the candle variables, so they are written as
//! they are. Served as `W·x + scale·alpha/r·B·(A·x)`, the same update training used.

use super::TrainError;
use crate::gguf::{self, TensorType, Value};
use candle_core::Var;
use std::path::Path;

/// What the adapter file says about itself besides its tensors.
#[derive(Clone, Debug)]
pub struct AdapterMeta {
    /// Display name.
    pub name: String,
    /// `general.architecture` of the base model.
    pub architecture: String,
    /// LoRA alpha.
    pub alpha: f32,
    /// sha256 of the base model file it was trained on.
    pub base_sha256: String,
    /// The dataset version it was trained on.
    pub dataset: String,
}

/// Write `vars` (named `<base tensor>.lora_a|b`) to `path` as a GGUF LoRA adapter (atomically).
pub fn write_adapter(
    path: &Path,
    meta: &AdapterMeta,
    vars: &[(String, Var)],
) -> Result<(), TrainError> {
    let metadata = vec![
        (
            "general.architecture".to_string(),
            Value::Str(meta.architecture.clone()),
        ),
        ("general.type".to_string(), Value::Str("adapter".into())),
        ("general.name".to_string(), Value::Str(meta.name.clone())),
        ("adapter.type".to_string(), Value::Str("lora".into())),
        ("adapter.lora.alpha".to_string(), Value::F32(meta.alpha)),
        (
            "twin.base_sha256".to_string(),
            Value::Str(meta.base_sha256.clone()),
        ),
        ("twin.dataset".to_string(), Value::Str(meta.dataset.clone())),
    ];
    let mut tensors = Vec::with_capacity(vars.len());
    for (name, var) in vars {
        let t = var.as_tensor();
        let values = t.flatten_all()?.to_vec1::<f32>()?;
        tensors.push(gguf::Tensor::from_f32(
            name.clone(),
            t.dims(),
            &values,
            TensorType::F32,
        ));
    }
    gguf::write(path, &metadata, &tensors).map_err(|e| TrainError::Export(e.to_string()))
}

/// Set `vars` from the adapter file at `path` (written by [`write_adapter`]): a run that
/// continues from an earlier adapter starts where it ended. Every variable must be in the file
/// with the same shape (same targets and rank); anything else is refused, naming the file.
pub fn read_adapter_into(path: &Path, vars: &[(String, Var)]) -> Result<(), TrainError> {
    use candle_core::quantized::gguf_file;
    let refuse = |reason: String| TrainError::Model {
        path: path.to_path_buf(),
        reason,
    };
    let mut file = std::fs::File::open(path).map_err(|source| TrainError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let content = gguf_file::Content::read(&mut file)
        .map_err(|e| refuse(format!("not a GGUF adapter: {e}")))?;
    for (name, var) in vars {
        let device = var.device();
        let tensor = content
            .tensor(&mut file, name, device)
            .map_err(|_| refuse(format!("has no {name}: trained with other targets?")))?
            .dequantize(device)?;
        if tensor.dims() != var.dims() {
            return Err(refuse(format!(
                "{name} is {:?}, this run's is {:?}: trained with another rank",
                tensor.dims(),
                var.dims()
            )));
        }
        var.set(&tensor)?;
    }
    Ok(())
}
