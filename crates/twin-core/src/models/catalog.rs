//! "Recommended for this computer": a curated, versioned catalog of well-known instruct GGUFs
//! on Hugging Face, and which of them this machine can draft with and train.
//!
//! The catalog (`catalog.json`, compiled in) stores only published facts: repository, file,
//! parameter count, file size, architecture and licence. Memory needs are computed here from
//! those facts, so one formula, calibrated on measurements, serves every entry:
//! - **drafting** needs the weights plus the KV cache and compute buffers of a 4096-token
//!   context: `size × 1.1 + 0.6 GB` (SmolLM2-135M measures ~0.4 GB; an 8B Q4_K_M ~6 GB);
//! - **training** dequantizes the weights to f32 and keeps activations for a 512-token
//!   sequence: `params × 5.2 GB/B + 0.7 GB`, scaled from the 1.4 GiB measured for the
//!   135M model on 2 cores (README, "training peak RSS").
//!
//! A model fits the GPU when its drafting memory is under 90% of the largest GPU's memory, and
//! the CPU when it is under half the RAM (the rest is the system's, the app's and the
//! library's). The pick is the largest model that fits *and* can be trained here in
//! reasonable time (on the GPU, or on the CPU at ≤ 30 min per epoch over 10,000 words, scaled
//! from the measured 2-core speed), because the twin is the fine-tuned model.

use crate::engine::{ComputeDevice, DeviceKind};
use crate::store::ModelRecord;
use serde::{Deserialize, Serialize};

/// The catalog as shipped; its `version` moves whenever an entry changes.
const CATALOG_JSON: &str = include_str!("catalog.json");

const GB: f64 = 1e9;
/// Drafting memory: weights × this, plus [`DRAFT_OVERHEAD_GB`].
const DRAFT_WEIGHT_FACTOR: f64 = 1.1;
const DRAFT_OVERHEAD_GB: f64 = 0.6;
/// Training memory per billion parameters, plus [`TRAIN_OVERHEAD_GB`].
const TRAIN_GB_PER_BILLION: f64 = 5.2;
const TRAIN_OVERHEAD_GB: f64 = 0.7;
/// Share of GPU memory a model may take.
const GPU_SHARE: f64 = 0.9;
/// Share of RAM a model may take for drafting (the rest is the system's and the app's).
const RAM_SHARE_DRAFT: f64 = 0.5;
/// Share of RAM training may take (drafting stops while it runs).
const RAM_SHARE_TRAIN: f64 = 0.7;
/// Training throughput measured on 2 CPU cores for the 135M model (tokens/s, median).
const CPU_TRAIN_TOKENS_PER_S_135M_2_CORES: f64 = 196.0;
/// The longest CPU training (minutes per epoch over 10,000 words) the pick may need.
const PICK_CPU_MINUTES_PER_10K_WORDS: f64 = 30.0;
/// Tokens per English word in these tokenizers, roughly.
const TOKENS_PER_WORD: f64 = 1.3;

/// One model in the catalog: published facts only.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, ts_rs::TS)]
#[ts(export)]
pub struct CatalogEntry {
    /// Short key for `twin models pull <id>`.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Hugging Face repository, `owner/name`.
    pub repo: String,
    /// The GGUF file in it.
    pub file: String,
    /// Parameters, in billions.
    pub params_b: f64,
    /// The file's size in MB (10⁶ bytes), as published.
    pub size_mb: u64,
    /// `general.architecture` of the GGUF.
    pub architecture: String,
    /// The model's licence, by name.
    pub licence: String,
    /// One line on what it is good for.
    pub about: String,
}

/// The whole catalog.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Catalog {
    /// Moves with every change to an entry.
    pub version: u32,
    /// When the entries were last checked against Hugging Face.
    pub reviewed: String,
    /// What the figures mean.
    pub note: String,
    /// The models, smallest first.
    pub models: Vec<CatalogEntry>,
}

impl Catalog {
    /// The catalog compiled into this build.
    pub fn shipped() -> Catalog {
        // The file is part of the source tree and a unit test parses it, so a failure here is
        // a build defect, not bad user input.
        serde_json::from_str(CATALOG_JSON).unwrap_or_else(|e| Catalog {
            version: 0,
            reviewed: String::new(),
            note: format!("catalog.json does not parse: {e}"),
            models: Vec::new(),
        })
    }

    /// The entry with this id (case-insensitive).
    pub fn find(&self, id: &str) -> Option<&CatalogEntry> {
        self.models.iter().find(|m| m.id.eq_ignore_ascii_case(id))
    }
}

/// What this machine offers a model.
#[derive(Clone, Debug, Serialize, ts_rs::TS)]
#[ts(export)]
pub struct Machine {
    /// Physical RAM in bytes.
    pub ram_bytes: u64,
    /// The largest GPU's memory in bytes, with its name; None without a usable GPU.
    pub gpu: Option<(String, u64)>,
    /// CPU threads available to Twin.
    pub cpu_threads: usize,
}

impl Machine {
    /// The machine as llama.cpp's devices describe it.
    pub fn from_devices(devices: &[ComputeDevice]) -> Machine {
        let ram_bytes = devices
            .iter()
            .filter(|d| d.kind == DeviceKind::Cpu)
            .map(|d| d.memory_total)
            .max()
            .unwrap_or(0);
        let gpu = devices
            .iter()
            .filter(|d| d.kind == DeviceKind::Gpu)
            .max_by_key(|d| d.memory_total)
            .map(|d| {
                let name = if d.description.is_empty() {
                    d.name.clone()
                } else {
                    d.description.clone()
                };
                (name, d.memory_total)
            });
        Machine {
            ram_bytes,
            gpu,
            cpu_threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

/// Where a model would draft on this machine.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "snake_case", tag = "kind")]
#[derive(ts_rs::TS)]
#[ts(export)]
pub enum Placement {
    /// Fully offloaded to the GPU.
    Gpu,
    /// On the CPU, in RAM.
    Cpu,
    /// Needs more memory than this machine has to spare.
    TooBig,
}

/// Whether Twin can train a voice adapter for a model here.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "snake_case", tag = "kind")]
#[derive(ts_rs::TS)]
#[ts(export)]
pub enum Trainability {
    /// Yes; on the CPU, with a rough time per 10,000 words of writing per epoch.
    Yes {
        /// Minutes per 10k words per epoch on this machine's CPU (None when training on the GPU).
        cpu_minutes_per_10k_words: Option<f64>,
    },
    /// The architecture is supported but training needs more memory than this machine has.
    NeedsMemory {
        /// Estimated bytes needed.
        bytes: u64,
    },
    /// Twin's trainer does not implement this architecture.
    Unsupported,
}

/// One catalog entry judged against this machine.
#[derive(Clone, Debug, Serialize, ts_rs::TS)]
#[ts(export)]
pub struct Recommendation {
    /// The catalog entry.
    pub entry: CatalogEntry,
    /// Estimated memory to draft with a 4096-token context, bytes.
    pub draft_bytes: u64,
    /// Estimated memory to train, bytes.
    pub train_bytes: u64,
    /// Where it would run.
    pub placement: Placement,
    /// Whether it can be trained here.
    pub training: Trainability,
    /// The single best choice for this machine (at most one entry).
    pub pick: bool,
    /// Already registered (pulled or added) in this library.
    pub installed: bool,
}

impl Recommendation {
    /// Runs on this machine at all.
    pub fn fits(&self) -> bool {
        self.placement != Placement::TooBig
    }
}

/// Estimated bytes to draft with `entry`.
pub fn draft_bytes(entry: &CatalogEntry) -> u64 {
    ((entry.size_mb as f64 * 1e6) * DRAFT_WEIGHT_FACTOR + DRAFT_OVERHEAD_GB * GB) as u64
}

/// Estimated bytes to train a voice adapter on `entry`.
pub fn train_bytes(entry: &CatalogEntry) -> u64 {
    ((entry.params_b * TRAIN_GB_PER_BILLION + TRAIN_OVERHEAD_GB) * GB) as u64
}

/// Judge every catalog entry against `machine`; `registered` marks the ones already here.
/// Sorted with the pick first, then models that fit (largest first), then the rest.
pub fn recommend(
    catalog: &Catalog,
    machine: &Machine,
    registered: &[ModelRecord],
) -> Vec<Recommendation> {
    let gpu_budget = machine.gpu.as_ref().map_or(0.0, |g| g.1 as f64 * GPU_SHARE);
    let ram_draft_budget = machine.ram_bytes as f64 * RAM_SHARE_DRAFT;
    let ram_train_budget = machine.ram_bytes as f64 * RAM_SHARE_TRAIN;
    let mut out: Vec<Recommendation> = catalog
        .models
        .iter()
        .map(|entry| {
            let draft = draft_bytes(entry);
            let train = train_bytes(entry);
            let placement = if (draft as f64) <= gpu_budget {
                Placement::Gpu
            } else if (draft as f64) <= ram_draft_budget {
                Placement::Cpu
            } else {
                Placement::TooBig
            };
            let supported = super::TRAINABLE_ARCHITECTURES.contains(&entry.architecture.as_str());
            let training = if !supported {
                Trainability::Unsupported
            } else if (train as f64) <= gpu_budget {
                Trainability::Yes {
                    cpu_minutes_per_10k_words: None,
                }
            } else if (train as f64) <= ram_train_budget {
                Trainability::Yes {
                    cpu_minutes_per_10k_words: Some(cpu_training_minutes(entry, machine)),
                }
            } else {
                Trainability::NeedsMemory { bytes: train }
            };
            let installed = registered.iter().any(|r| {
                std::path::Path::new(&r.path)
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().eq_ignore_ascii_case(&entry.file))
            });
            Recommendation {
                entry: entry.clone(),
                draft_bytes: draft,
                train_bytes: train,
                placement,
                training,
                pick: false,
                installed,
            }
        })
        .collect();
    let pick = out
        .iter()
        .enumerate()
        .filter(|(_, r)| r.fits() && trains_in_reasonable_time(&r.training))
        .max_by(|a, b| a.1.entry.params_b.total_cmp(&b.1.entry.params_b))
        .map(|(i, _)| i);
    if let Some(i) = pick {
        out[i].pick = true;
    }
    out.sort_by(|a, b| {
        b.pick
            .cmp(&a.pick)
            .then(b.fits().cmp(&a.fits()))
            .then(b.entry.params_b.total_cmp(&a.entry.params_b))
    });
    out
}

/// Trainable on the GPU, or on the CPU within [`PICK_CPU_MINUTES_PER_10K_WORDS`]: a pick
/// that takes a night to learn a voice is not the best choice, even if it fits.
fn trains_in_reasonable_time(t: &Trainability) -> bool {
    match t {
        Trainability::Yes {
            cpu_minutes_per_10k_words: Some(m),
        } => *m <= PICK_CPU_MINUTES_PER_10K_WORDS,
        Trainability::Yes { .. } => true,
        _ => false,
    }
}

/// Minutes per epoch over 10,000 words on this machine's CPU: the 2-core measurement for the
/// 135M model, scaled by parameters (compute grows with them) and by cores.
fn cpu_training_minutes(entry: &CatalogEntry, machine: &Machine) -> f64 {
    let cores = machine.cpu_threads.max(1) as f64;
    let tokens_per_s =
        CPU_TRAIN_TOKENS_PER_S_135M_2_CORES * (0.135 / entry.params_b.max(0.01)) * (cores / 2.0);
    10_000.0 * TOKENS_PER_WORD / tokens_per_s / 60.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine(ram_gb: f64, gpu_gb: Option<f64>) -> Machine {
        Machine {
            ram_bytes: (ram_gb * GB) as u64,
            gpu: gpu_gb.map(|g| ("test GPU".to_string(), (g * GB) as u64)),
            cpu_threads: 2,
        }
    }

    #[test]
    fn the_shipped_catalog_parses_and_its_entries_are_well_formed() {
        let c = Catalog::shipped();
        assert!(c.version >= 1, "{}", c.note);
        assert!(c.models.len() >= 10);
        let mut ids = std::collections::HashSet::new();
        for m in &c.models {
            assert!(ids.insert(m.id.clone()), "duplicate id {}", m.id);
            assert_eq!(m.repo.split('/').count(), 2, "{}", m.repo);
            assert!(m.file.ends_with(".gguf"), "{}", m.file);
            assert!(m.params_b > 0.1 && m.size_mb > 100, "{}", m.id);
            // A Q4-or-better file holds at least ~0.5 byte per parameter.
            assert!(
                m.size_mb as f64 >= m.params_b * 450.0,
                "{} looks too small",
                m.id
            );
            assert!(!m.licence.is_empty() && !m.about.is_empty());
        }
    }

    #[test]
    fn an_8_gb_laptop_gets_small_models_and_a_trainable_pick() {
        let c = Catalog::shipped();
        let recs = recommend(&c, &machine(8.0, None), &[]);
        let pick = recs.iter().find(|r| r.pick).expect("a pick on 8 GB");
        assert!(pick.entry.params_b < 1.0, "{}", pick.entry.id);
        assert_eq!(pick.placement, Placement::Cpu);
        assert!(recs[0].pick, "the pick comes first");
        let big = recs.iter().find(|r| r.entry.id == "llama3.1-8b").unwrap();
        assert_eq!(big.placement, Placement::TooBig);
        let gemma = recs.iter().find(|r| r.entry.id == "gemma3-4b").unwrap();
        assert_eq!(gemma.training, Trainability::Unsupported);
    }

    #[test]
    fn a_24_gb_gpu_runs_every_model_on_it_and_picks_a_large_trainable_one() {
        let c = Catalog::shipped();
        let recs = recommend(&c, &machine(64.0, Some(24.0)), &[]);
        assert!(recs.iter().all(|r| r.placement == Placement::Gpu));
        let pick = recs.iter().find(|r| r.pick).unwrap();
        assert!(pick.entry.params_b >= 3.0, "{}", pick.entry.id);
        assert_eq!(
            pick.training,
            Trainability::Yes {
                cpu_minutes_per_10k_words: None
            }
        );
    }

    #[test]
    fn a_machine_too_small_for_everything_has_no_pick() {
        let recs = recommend(&Catalog::shipped(), &machine(0.5, None), &[]);
        assert!(recs.iter().all(|r| !r.fits() && !r.pick));
    }

    #[test]
    fn memory_estimates_match_the_measured_135m_model() {
        let smol = CatalogEntry {
            id: "smollm2-135m".into(),
            name: String::new(),
            repo: String::new(),
            file: String::new(),
            params_b: 0.135,
            size_mb: 95,
            architecture: "llama".into(),
            licence: String::new(),
            about: String::new(),
        };
        // Measured: training peak RSS 1.4 GiB (1.5 GB); drafting ~0.4–0.7 GB.
        let t = train_bytes(&smol) as f64 / GB;
        assert!((1.2..1.8).contains(&t), "{t}");
        let d = draft_bytes(&smol) as f64 / GB;
        assert!((0.4..1.0).contains(&d), "{d}");
    }
}
