//! The benchmarks through the service: which models and folders they measure by default.

use super::{ModelChoice, Twin};
use crate::bench::{self, BenchPart, BenchRow};
use crate::error::{ErrorKind, TwinError};
use crate::progress::Progress;
use std::path::{Path, PathBuf};

/// The user's own pieces per format `twin bench quality` measures as the fluency reference.
const OWN_PIECES_PER_FORMAT: usize = 6;

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

    /// A service on a scratch data folder under `scratch` with this library's embedding model
    /// and active chat model, `writing` (default: the sample writing) imported, and automatic
    /// training off: what the benchmarks that train measure on.
    fn scratch_twin(&self, writing: Option<&Path>, scratch: &Path) -> Result<Twin, TwinError> {
        use crate::progress::{CancelToken, NoProgress};
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
        twin.save_autotrain_settings(&crate::autotrain::AutotrainSettings {
            enabled: false,
            ..Default::default()
        })?;
        twin.import(
            &[writing],
            crate::library::ImportOptions::default(),
            &NoProgress,
            &CancelToken::new(),
        )?;
        Ok(twin)
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
            let own = bench::quality::own_writing_perplexity(
                lib,
                &loaded.model,
                &spec.formats,
                OWN_PIECES_PER_FORMAT,
                cancel,
            )?;
            let stats = crate::draft::style::card(lib.store())?.stats;
            let own_sentence_words =
                (stats.mean_sentence_words > 0.0).then_some(stats.mean_sentence_words);
            let rows = bench::quality::summary(&drafts, &voice, &own, own_sentence_words);
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
        use crate::progress::CancelToken;
        use std::time::Instant;
        let twin = self.scratch_twin(writing, scratch)?;
        twin.save_autotrain_settings(&crate::autotrain::AutotrainSettings {
            enabled: false,
            max_steps: steps,
            ..Default::default()
        })?;

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

    /// `twin bench preference`: adapters trained without the preference term and with each of
    /// `objectives`, same dataset (one machine draft per training request) and steps, on `writing`
    /// (default: the sample writing) in a scratch folder. On held-out pairs (each held-out passage against the base model's
    /// draft for its request, passages no adapter trained on) the margin log p(user text) −
    /// log p(draft) per token under llama.cpp; and "sounds like you" of `drafts` drafts on
    /// held-out topics with each adapter (held-out documents out of retrieval).
    pub fn bench_preference(
        &self,
        writing: Option<&Path>,
        scratch: &Path,
        steps: usize,
        objectives: &[crate::train::PreferenceObjective],
        drafts: usize,
    ) -> Result<Vec<BenchRow>, TwinError> {
        use crate::draft::DraftRequest;
        use crate::engine::{ChatMessage, GenerateRequest, Sampling};
        use crate::progress::{CancelToken, NoProgress};
        use crate::store::{ExampleKind, Split};
        use crate::train::{
            adapters::AdapterPick, DatasetParams, PreferenceObjective, PreferenceParams,
            TrainParams,
        };
        use std::time::Instant;
        let cancel = CancelToken::new();
        let twin = self.scratch_twin(writing, scratch)?;
        // One machine draft per training request (up to 64): many pairs, as the autotrain cycle
        // builds them when preference training is on.
        let dataset_params = DatasetParams {
            machine_drafts: crate::train::dataset::PREFERENCE_MACHINE_DRAFTS,
            ..Default::default()
        };
        let dataset = twin.build_dataset(dataset_params, None, None, &NoProgress, &cancel)?;
        let sft = TrainParams {
            max_steps: Some(steps),
            activate: false,
            ..Default::default()
        };
        let mut trained = Vec::new();
        for objective in std::iter::once(None).chain(objectives.iter().copied().map(Some)) {
            let params = TrainParams {
                preference: objective.map(PreferenceParams::new),
                ..sft.clone()
            };
            let name = match objective {
                None => "sft",
                Some(PreferenceObjective::Dpo) => "dpo",
                Some(PreferenceObjective::Simpo) => "simpo",
                Some(PreferenceObjective::LnDpo) => "ln-dpo",
            };
            let started = Instant::now();
            let outcome = twin.train(None, None, &params, Some(name), &cancel, &mut |_| {})?;
            trained.push((outcome, started.elapsed().as_secs_f64()));
        }

        // Held-out pairs: the user's passage against the base model's draft for its request.
        let heldout: Vec<_> = dataset
            .split(Split::Test)
            .filter(|e| e.kind == ExampleKind::User)
            .collect();
        let (base, config) = twin.with_library(|lib| {
            let settings = twin.settings_in(lib)?;
            let record = crate::models::resolve_chat_model(lib.store(), None)?;
            let config = crate::engine::ChatModelConfig {
                context_tokens: crate::eval::CONTEXT_TOKENS,
                ..settings.chat_config()
            };
            Ok((record, config))
        })?;
        let base_model = crate::models::load_chat_model(&base, &config)?;
        let mut pairs: Vec<(Vec<ChatMessage>, String, String)> = Vec::new();
        for (i, e) in heldout.iter().enumerate() {
            let draft = base_model.generate(
                &GenerateRequest {
                    messages: e.messages.clone(),
                    max_tokens: 200,
                    sampling: Sampling {
                        seed: 0x5eed + i as u32,
                        ..Sampling::drafting()
                    },
                    ..Default::default()
                },
                &cancel,
                &mut |_| {},
            )?;
            pairs.push((e.messages.clone(), e.reply.clone(), draft.text));
        }
        drop(base_model);
        let per_token = |model: &crate::engine::ChatModel,
                         messages: &[ChatMessage],
                         reply: &str,
                         scale: f32|
         -> Result<f64, TwinError> {
            let enc = model.encode_example(messages, reply)?;
            let nll = model
                .score(&enc.tokens, enc.prompt_len, scale, &cancel)?
                .nll;
            Ok(-nll.iter().map(|&x| f64::from(x)).sum::<f64>() / nll.len().max(1) as f64)
        };
        let stats = |v: &[f64]| {
            let n = v.len().max(1) as f64;
            let mean = v.iter().sum::<f64>() / n;
            let sd = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
            (mean, sd)
        };
        let mut rows = vec![bench::row(
            "preference pairs",
            dataset
                .examples
                .iter()
                .filter(|e| e.kind == ExampleKind::Machine)
                .count()
                .to_string(),
            "training passages against the base model's draft for the same request",
        )];
        let mut margins = Vec::new();
        for (outcome, secs) in &trained {
            let adapter = &outcome.adapter;
            let model = crate::models::load_chat_model(
                &base,
                &crate::engine::ChatModelConfig {
                    adapter: Some(PathBuf::from(&adapter.path)),
                    ..config.clone()
                },
            )?;
            let mut m = Vec::new();
            let mut base_m = Vec::new();
            for (messages, user, draft) in &pairs {
                m.push(
                    per_token(&model, messages, user, 1.0)?
                        - per_token(&model, messages, draft, 1.0)?,
                );
                base_m.push(
                    per_token(&model, messages, user, 0.0)?
                        - per_token(&model, messages, draft, 0.0)?,
                );
            }
            if margins.is_empty() {
                let (mean, sd) = stats(&base_m);
                rows.push(bench::row(
                    "held-out margin, base model",
                    format!("{mean:+.3} ± {sd:.3} nats/token"),
                    format!(
                        "log p(your text) − log p(its draft) per token, {} held-out pairs",
                        pairs.len()
                    ),
                ));
            }
            let (mean, sd) = stats(&m);
            margins.push(mean);
            rows.push(bench::row(
                format!("held-out margin, {}", adapter.name),
                format!("{mean:+.3} ± {sd:.3} nats/token"),
                format!(
                    "held-out loss {:.3} → {:.3}; {} steps in {secs:.0} s",
                    outcome.base_eval_loss, outcome.best_eval_loss, outcome.steps
                ),
            ));
        }

        // "Sounds like you" of drafts on held-out topics with each adapter.
        let excluded: Vec<String> = heldout
            .iter()
            .filter_map(|e| e.document_path.clone())
            .collect();
        let topics: Vec<_> = heldout.iter().filter_map(|e| e.request.clone()).collect();
        let mut voices = Vec::new();
        for (outcome, _) in &trained {
            let mut scores = Vec::new();
            for i in 0..drafts.max(1) {
                let Some((format, topic)) = topics.get(i % topics.len().max(1)).cloned() else {
                    break;
                };
                let mut request = DraftRequest::new(topic, format);
                request.draft_only = true;
                request.exclude_documents = excluded.clone();
                request.sampling.seed = 0x7717 + i as u32;
                let spec = super::DraftSpec {
                    request,
                    strength: None,
                    author: None,
                    model: ModelChoice {
                        adapter: AdapterPick::Named(outcome.adapter.name.clone()),
                        ..Default::default()
                    },
                };
                let done = twin.draft(&spec, &cancel, |_| {}, &mut |_| {})?;
                scores.extend(done.sounds_like_you);
            }
            let (mean, sd) = stats(&scores);
            voices.push(mean);
            rows.push(bench::row(
                format!("sounds like you, {}", outcome.adapter.name),
                format!("{:.1}% ± {:.1}", mean * 100.0, sd * 100.0),
                format!("{} drafts on held-out topics", scores.len()),
            ));
        }
        if let (Some(m_sft), Some(v_sft)) = (margins.first(), voices.first()) {
            for ((outcome, _), (m, v)) in trained.iter().zip(margins.iter().zip(&voices)).skip(1) {
                rows.push(bench::row(
                    format!("{} vs SFT only", outcome.adapter.name),
                    format!(
                        "margin {:+.3} nats/token, sounds like you {:+.1} points",
                        m - m_sft,
                        (v - v_sft) * 100.0
                    ),
                    "positive: the preference term moved the adapter towards your text",
                ));
            }
        }
        Ok(rows)
    }
}
