//! The benchmarks through the service: which models and folders they measure by default.

use super::{ModelChoice, Twin};
use crate::bench::{self, BenchPart, BenchRow};
use crate::error::{ErrorKind, TwinError};
use crate::progress::Progress;
use std::path::{Path, PathBuf};

/// What `twin bench library` measures; `None` folders are the Rust toolchain's docs.
#[derive(Clone, Debug, Default)]
pub struct LibraryBenchSpec {
    /// The large folder for the parse-only pass (default: the Rust docs tree).
    pub tree: Option<PathBuf>,
    /// The folder imported with embedding (default: the Rust Book).
    pub subset: Option<PathBuf>,
    /// Library sizes (chunks) for search latency.
    pub sizes: Vec<usize>,
    /// Queries per size.
    pub queries: usize,
    /// Parts to run; empty runs all.
    pub parts: Vec<BenchPart>,
}

fn needs_setup(message: &str) -> TwinError {
    TwinError::new(ErrorKind::NeedsSetup, message)
}

/// The Rust toolchain's HTML docs (`rustc --print sysroot`): real text on every machine that
/// builds Twin.
fn rust_docs() -> Result<PathBuf, TwinError> {
    let out = std::process::Command::new("rustc")
        .args(["--print", "sysroot"])
        .output()
        .map_err(|e| {
            needs_setup(&format!(
                "running rustc for the Rust docs: {e}; pass the folders"
            ))
        })?;
    Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()).join("share/doc/rust/html"))
}

impl Twin {
    /// The library's embedding model file.
    fn embedding_model_path(&self) -> Result<PathBuf, TwinError> {
        self.with_library(|lib| {
            let model = lib.store().embedding_model()?.ok_or_else(|| {
                needs_setup(
                    "no embedding model: run `twin models import models/all-MiniLM-L6-v2` first",
                )
            })?;
            Ok(PathBuf::from(model.path))
        })
    }

    /// `twin bench draft`: the chat model `choice` names (else the active one) against bare
    /// llama.cpp, with `writing` (default: `assets/sample-writing` here) imported into a scratch
    /// library under `scratch`.
    pub fn bench_draft(
        &self,
        choice: &ModelChoice,
        writing: Option<&Path>,
        scratch: &Path,
        tokens: usize,
        runs: usize,
    ) -> Result<Vec<BenchRow>, TwinError> {
        let chat = self.with_library(|lib| {
            Ok(crate::models::resolve_chat_model(
                lib.store(),
                choice.model.as_deref(),
            )?)
        })?;
        let writing = match writing {
            Some(w) => w.to_path_buf(),
            None => std::env::current_dir()
                .map_err(|e| TwinError::failed(e.to_string()))?
                .join("assets/sample-writing"),
        };
        if !writing.exists() {
            return Err(TwinError::about(
                ErrorKind::NotFound,
                writing,
                "no such folder; pass --writing",
            ));
        }
        let spec = bench::draft::DraftBench {
            model: PathBuf::from(chat.path),
            config: self.chat_config(choice)?,
            embedding_model: self.embedding_model_path()?,
            writing,
            scratch: scratch.join("library"),
            tokens,
            runs,
        };
        Ok(bench::draft::draft(&spec)?)
    }

    /// `twin bench library` with the library's embedding model, scratch libraries under
    /// `scratch`.
    pub fn bench_library(
        &self,
        spec: &LibraryBenchSpec,
        scratch: &Path,
        progress: &dyn Progress,
    ) -> Result<Vec<BenchRow>, TwinError> {
        let docs = match (&spec.tree, &spec.subset) {
            (Some(_), Some(_)) => PathBuf::new(),
            _ => rust_docs()?,
        };
        let run = bench::LibraryBench {
            tree: spec.tree.clone().unwrap_or_else(|| docs.clone()),
            subset: spec.subset.clone().unwrap_or_else(|| docs.join("book")),
            search_sizes: spec.sizes.clone(),
            queries: spec.queries,
            model: self.embedding_model_path()?,
            threads: self.stored_settings()?.embedder_config().threads,
            scratch: scratch.to_path_buf(),
            parts: spec.parts.clone(),
        };
        Ok(bench::library(&run, progress)?)
    }

    /// `twin bench train`: `steps` LoRA steps of `params` on the newest dataset and the active
    /// chat model.
    pub fn bench_train(
        &self,
        params: &crate::train::TrainParams,
        steps: usize,
    ) -> Result<Vec<BenchRow>, TwinError> {
        let (record, dataset) = self.with_library(|lib| {
            let record = crate::models::resolve_chat_model(lib.store(), None)?;
            Ok((record, crate::train::Dataset::load(lib.store(), None)?))
        })?;
        Ok(bench::train::train(
            Path::new(&record.path),
            &dataset,
            params,
            steps,
        )?)
    }

    /// `twin bench quality`: every chain of `spec` drafts its topics in its formats on this
    /// library with the model `choice` names; `spec`'s empty lists are the defaults (three
    /// fixed topics, every format, every chain) and its strength the adapter's. `on_setup`
    /// hears the model and adapter first, `on_draft` each draft. The drafts and the table, with
    /// "sounds like you" per chain.
    pub fn bench_quality(
        &self,
        choice: &ModelChoice,
        mut spec: bench::quality::QualitySpec,
        cancel: &crate::progress::CancelToken,
        on_setup: impl FnOnce(&super::DraftingModel, &bench::quality::QualitySpec),
        on_draft: &mut dyn FnMut(&bench::quality::QualityDraft),
    ) -> Result<(Vec<bench::quality::QualityDraft>, Vec<BenchRow>), TwinError> {
        use crate::draft::{Chain, Format};
        if spec.topics.is_empty() {
            spec.topics = bench::quality::TOPICS
                .iter()
                .map(|t| t.to_string())
                .collect();
        }
        if spec.formats.is_empty() {
            spec.formats = Format::ALL.to_vec();
        }
        if spec.chains.is_empty() {
            spec.chains = Chain::ALL.to_vec();
        }
        self.with_library(|lib| {
            let loaded = self.chat_model(lib, choice, crate::train::adapters::DEFAULT_CHANNEL)?;
            spec.adapter_scale = loaded.adapter.as_ref().map_or(0.0, |a| a.scale);
            on_setup(&loaded, &spec);
            let drafts = bench::quality::run(lib, &loaded.model, &spec, cancel, on_draft)?;
            let classifier = crate::eval::authorship_model(lib.store())?;
            let voice = |text: &str| classifier.as_ref().map(|c| c.probability(text));
            let rows = bench::quality::summary(&drafts, &voice);
            Ok((drafts, rows))
        })
    }
}
