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
    /// The writing a benchmark imports: `writing`, else `assets/sample-writing` here.
    fn bench_writing(&self, writing: Option<&Path>) -> Result<PathBuf, TwinError> {
        let writing = match writing {
            Some(w) => w.to_path_buf(),
            None => std::env::current_dir()
                .map_err(|e| TwinError::failed(e.to_string()))?
                .join("assets/sample-writing"),
        };
        if !writing.exists() {
            return Err(TwinError::about(
                ErrorKind::NotFound,
                &writing,
                "no such folder; pass --writing",
            ));
        }
        Ok(writing)
    }

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
        let writing = self.bench_writing(writing)?;
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

    /// `twin bench autotrain`: one automatic training cycle on `writing` (default: the sample
    /// writing here) in a scratch data folder under `scratch`, with the library's embedding
    /// model and the active chat model: the time of each phase and the peak memory, and how
    /// long a LinkedIn draft waits for its first token idle and while the cycle trains (the
    /// cycle yields at its next step). `steps` caps the candidate's training (None: the
    /// training defaults); `runs` drafts are timed each way (median).
    pub fn bench_autotrain(
        &self,
        writing: Option<&Path>,
        scratch: &Path,
        steps: Option<usize>,
        runs: usize,
    ) -> Result<Vec<BenchRow>, TwinError> {
        use crate::autotrain::AutotrainEvent;
        use crate::draft::{DraftEvent, Format};
        use crate::progress::{CancelToken, NoProgress};
        use std::time::Instant;
        let chat =
            self.with_library(|lib| Ok(crate::models::resolve_chat_model(lib.store(), None)?))?;
        let embedding = self.embedding_model_path()?;
        let writing = self.bench_writing(writing)?;
        let twin = Twin::open(super::TwinOptions {
            data_dir: Some(scratch.join("data")),
            threads: self.threads,
            model_dirs: self.model_dirs.clone(),
        })?;
        twin.with_library(|lib| Ok(lib.set_embedding_model(&embedding).map(|_| ())?))?;
        twin.add_model(Path::new(&chat.path), "added", Some(&chat.name))?;
        let mut settings = crate::autotrain::AutotrainSettings {
            enabled: false,
            ..Default::default()
        };
        settings.max_steps = steps;
        twin.save_autotrain_settings(&settings)?;
        twin.import(
            &[writing],
            crate::library::ImportOptions::default(),
            &NoProgress,
            &CancelToken::new(),
        )?;

        // Time to the first token of the writing step, the draft stopped right there.
        let topics = bench::quality::TOPICS;
        let first_token = |topic: &str| -> Result<f64, TwinError> {
            let cancel = CancelToken::new();
            let started = Instant::now();
            let mut first = None;
            let spec = super::DraftSpec::new(topic, Format::Linkedin);
            let result = twin.draft(&spec, &cancel, |_| {}, &mut |e| {
                if let DraftEvent::Text { step, .. } = e {
                    if step != "self_query" && step != "expand" && first.is_none() {
                        first = Some(started.elapsed().as_secs_f64() * 1e3);
                        cancel.cancel();
                    }
                }
            });
            match result {
                Ok(_) => Ok(first.unwrap_or(0.0)),
                Err(e) if e.kind == ErrorKind::Cancelled => Ok(first.unwrap_or(0.0)),
                Err(e) => Err(e),
            }
        };
        let runs = runs.clamp(1, topics.len());
        // Loads the model and warms the shared prompt prefix, as the runs after it find it.
        first_token(topics[runs - 1])?;
        let idle = (0..runs)
            .map(|i| first_token(topics[i]))
            .collect::<Result<Vec<_>, _>>()?;

        let (busy, cycle) = std::thread::scope(|s| {
            let (training, started) = std::sync::mpsc::channel();
            let cancel = CancelToken::new();
            let on_event = move |e: AutotrainEvent| {
                if let AutotrainEvent::Progress { phase, .. } = &e {
                    if phase == "train" {
                        let _ = training.send(());
                    }
                }
            };
            let twin = &twin;
            let cycle = s.spawn(move || {
                // As the follower runs it in the app and `twin watch`.
                super::autotrain::lower_priority();
                twin.autotrain_run(&super::CycleOverrides::default(), &on_event, &cancel)
            });
            // Drafts start once the candidate is training, each after a step has begun.
            let busy = match started.recv() {
                Ok(()) => (0..runs)
                    .map(|i| {
                        std::thread::sleep(std::time::Duration::from_millis(1500));
                        first_token(topics[i])
                    })
                    .collect::<Result<Vec<_>, _>>(),
                Err(_) => Err(TwinError::failed(
                    "the training cycle ended before it trained",
                )),
            };
            let cycle = cycle
                .join()
                .map_err(|_| TwinError::failed("the training cycle panicked"))?;
            Ok::<_, TwinError>((busy?, cycle?))
        })?;
        let (idle_ms, busy_ms) = (bench::draft::median(idle), bench::draft::median(busy));
        let mut rows = vec![
            bench::row(
                "draft first token, idle",
                format!("{idle_ms:.0} ms"),
                format!("LinkedIn post, full chain, median of {runs}"),
            ),
            bench::row(
                "draft first token, cycle training",
                format!("{busy_ms:.0} ms"),
                format!(
                    "{:.2}× idle (goal ≤ 2×): the candidate pauses at its next step",
                    busy_ms / idle_ms.max(1e-9)
                ),
            ),
        ];
        let sc = &cycle.scores;
        for (phase, secs) in &sc.seconds {
            rows.push(bench::row(
                format!("cycle: {phase}"),
                format!("{secs:.1} s"),
                match phase.as_str() {
                    "train" => format!("{} steps, drafts above included", sc.steps),
                    "evaluate" => format!(
                        "held-out loss and {} drafts a side",
                        sc.candidate.as_ref().map_or(0, |c| c.drafts)
                    ),
                    _ => "back-translations of new passages, replay, machine drafts".into(),
                },
            ));
        }
        rows.push(bench::row(
            "cycle: total",
            format!("{:.1} s", sc.seconds.values().sum::<f64>()),
            format!(
                "{} new words; {}",
                cycle.change.words,
                cycle.reason.clone().unwrap_or_default()
            ),
        ));
        rows.push(bench::row(
            "peak memory (process)",
            sc.peak_memory_bytes.map_or("unknown".into(), |b| {
                format!("{:.0} MiB", b as f64 / 1048576.0)
            }),
            "VmHWM of this process: the drafting model, the training and the evaluation",
        ));
        Ok(rows)
    }
}
