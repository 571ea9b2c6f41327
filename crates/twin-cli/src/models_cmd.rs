//! `twin models …`: the model registry from the terminal.

use crate::{print_json, progress_bar::Bar, Cli};
use anyhow::{Context, Result};
use clap::Subcommand;
use std::path::PathBuf;
use std::process::ExitCode;
use twin_core::models::{self, registry, PullRequest};

#[derive(Subcommand)]
pub enum ModelsCommand {
    /// Convert a sentence-transformers folder to GGUF and use it as the library's embedding model
    /// (or, for a cross-encoder, as the reranker).
    Import {
        /// The model folder (config.json, model.safetensors, tokenizer.json).
        folder: PathBuf,
        /// Keep F32 weights instead of F16.
        #[arg(long)]
        f32: bool,
    },
    /// List registered models and GGUF files found in Ollama's and LM Studio's folders.
    List,
    /// Register a GGUF file (used in place, not copied); the first chat model becomes active.
    Add {
        /// The .gguf file.
        file: PathBuf,
        /// Name to show (default: the file name).
        #[arg(long)]
        name: Option<String>,
    },
    /// Register a model found in Ollama or LM Studio, by the name `list` shows.
    Adopt {
        /// The name shown under "found on this machine".
        name: String,
    },
    /// Models from Twin's catalog that suit this computer (RAM, GPU memory), with what each
    /// needs and whether Twin can train it here; pull one with `twin models pull <id>`.
    Recommend {
        /// Also list the models this computer cannot run.
        #[arg(long)]
        all: bool,
    },
    /// Download a GGUF file from Hugging Face ($HF_ENDPOINT overrides the hub); resumes.
    Pull {
        /// Repository (owner/name), or a catalog id from `twin models recommend`.
        repo: String,
        /// File in the repository (not needed with a catalog id).
        file: Option<String>,
        /// Branch, tag or commit.
        #[arg(long, default_value = "main")]
        revision: String,
    },
    /// Make a registered model the active one of its kind.
    Use {
        /// Id, name, unique name prefix or path.
        model: String,
    },
    /// Re-hash a registered model and compare with the recorded sha256.
    Verify {
        /// Id, name, unique name prefix or path.
        model: String,
    },
    /// Forget a registered model (the file stays where it is).
    Rm {
        /// Id, name, unique name prefix or path.
        model: String,
    },
}

fn home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default()
}

fn show(m: &twin_core::store::ModelRecord, active: bool) -> String {
    format!(
        "{:>3} {} {:<9} {:<28} {:>9.1} MiB  {:<8} sha256:{}  {}",
        m.id,
        if active { "*" } else { " " },
        m.kind,
        m.name,
        m.size as f64 / 1048576.0,
        m.origin,
        &m.sha256[..12.min(m.sha256.len())],
        m.path
    )
}

fn gb(bytes: u64) -> String {
    format!("{:.1} GB", bytes as f64 / 1e9)
}

/// The `recommend` table: the pick first, then what fits, largest first.
fn recommend_table(
    catalog: &models::Catalog,
    machine: &models::Machine,
    recs: &[models::Recommendation],
    all: bool,
) -> String {
    use models::catalog::{Placement, Trainability};
    use std::fmt::Write;
    let mut out = String::new();
    let gpu = machine
        .gpu
        .as_ref()
        .map_or("no GPU this build can use".to_string(), |(name, b)| {
            format!("{name}, {}", gb(*b))
        });
    let _ = writeln!(
        out,
        "this computer: {} RAM, {} CPU threads, {gpu}",
        gb(machine.ram_bytes),
        machine.cpu_threads
    );
    let _ = writeln!(
        out,
        "catalog v{} (reviewed {}); memory figures are estimates\n",
        catalog.version, catalog.reviewed
    );
    let _ = writeln!(
        out,
        "  {:<14} {:<26} {:>8} {:>9}  {:<5} {:<28} licence",
        "id", "model", "download", "memory", "runs", "train here"
    );
    let mut hidden = 0;
    for r in recs {
        if !all && !r.fits() {
            hidden += 1;
            continue;
        }
        let runs = match r.placement {
            Placement::Gpu => "GPU",
            Placement::Cpu => "CPU",
            Placement::TooBig => "no",
        };
        let train = match &r.training {
            Trainability::Yes {
                cpu_minutes_per_10k_words: Some(m),
            } => format!("yes, ~{m:.0} min per 10k words"),
            Trainability::Yes { .. } => "yes, on the GPU".to_string(),
            Trainability::NeedsMemory { bytes } => format!("needs {}", gb(*bytes)),
            Trainability::Unsupported => format!("no ({} not supported)", r.entry.architecture),
        };
        let _ = writeln!(
            out,
            "{} {:<14} {:<26} {:>8} {:>9}  {:<5} {:<28} {}{}",
            if r.pick { "★" } else { " " },
            r.entry.id,
            r.entry.name,
            gb(r.entry.size_mb * 1_000_000),
            gb(r.draft_bytes),
            runs,
            train,
            r.entry.licence,
            if r.installed { "  (installed)" } else { "" }
        );
    }
    if hidden > 0 {
        let _ = writeln!(
            out,
            "\n{hidden} larger models need more memory than this computer has (--all lists them)"
        );
    }
    match recs.iter().find(|r| r.pick) {
        Some(p) => {
            let _ = writeln!(
                out,
                "\n★ best for this computer: {}. {}\n  twin models pull {}",
                p.entry.name, p.entry.about, p.entry.id
            );
        }
        None => {
            let _ = writeln!(out, "\nno catalog model can be trained on this computer; the built-in model still drafts");
        }
    }
    out
}

pub fn run(cli: &Cli, cmd: &ModelsCommand) -> Result<ExitCode> {
    let twin = crate::service(cli)?;
    let library = twin.open_library()?;
    let store = library.store();
    match cmd {
        ModelsCommand::Import { folder, f32 } => {
            let (converted, reset) = twin.import_model_folder(folder, *f32)?;
            if cli.json {
                print_json(
                    &serde_json::json!({"path": converted.path, "name": converted.name, "dim": converted.dim,
                    "max_tokens": converted.max_tokens, "tensors": converted.n_tensors, "vectors_reset": reset,
                    "reranker": converted.reranker}),
                )?;
            } else {
                println!(
                    "converted {} → {} ({} dims, {} tensors); it is now {}",
                    folder.display(),
                    converted.path.display(),
                    converted.dim,
                    converted.n_tensors,
                    if converted.reranker {
                        "the active reranker: drafts reorder retrieved passages with it"
                    } else {
                        "the library's embedding model"
                    }
                );
                if reset {
                    println!("the previous model's vectors were dropped; the next import re-embeds everything");
                }
            }
        }
        ModelsCommand::List => {
            let overview = twin.models(Some(&home()))?;
            let active: Vec<i64> = [overview.active_chat, overview.active_reranker]
                .into_iter()
                .flatten()
                .collect();
            if cli.json {
                print_json(&serde_json::json!({"registered": overview.registered,
                    "active": active, "found": overview.discovered}))?;
            } else {
                if overview.registered.is_empty() {
                    println!("no models registered: twin models add <file.gguf>");
                }
                for m in &overview.registered {
                    println!("{}", show(m, active.contains(&m.id)));
                }
                if !overview.discovered.is_empty() {
                    println!("\nfound on this machine (register with `twin models adopt <name>`):");
                    for d in &overview.discovered {
                        println!("    {:<8} {:<40} {}", d.origin, d.name, d.path.display());
                    }
                }
            }
        }
        ModelsCommand::Add { file, name } => {
            let record = twin.add_model(file, "added", name.as_deref())?;
            if cli.json {
                print_json(&record)?;
            } else {
                println!("{}", show(&record, false));
            }
        }
        ModelsCommand::Adopt { name } => {
            let record = twin.adopt_model(name, &home())?;
            if cli.json {
                print_json(&record)?;
            } else {
                println!("{}", show(&record, false));
            }
        }
        ModelsCommand::Pull {
            repo,
            file,
            revision,
        } => {
            let (repo, file) = match file {
                Some(file) => (repo.clone(), file.clone()),
                None => {
                    let catalog = models::Catalog::shipped();
                    let entry = catalog.find(repo).with_context(|| {
                        format!("{repo:?} is not a catalog id (see `twin models recommend`); for any other model give the repository and the file")
                    })?;
                    (entry.repo.clone(), entry.file.clone())
                }
            };
            let mut request = PullRequest::new(&repo, &file);
            request.revision = revision.clone();
            let bar = Bar::new(!cli.json);
            let cancel = crate::cancel_on_ctrl_c();
            let pulled = twin.pull_model(&request, &bar, &cancel);
            bar.finish();
            let record = pulled?;
            if cli.json {
                print_json(&record)?;
            } else {
                println!("{}", show(&record, false));
                println!(
                    "next: `twin models use {}`, then `twin train` to make it your twin",
                    record.name
                );
            }
        }
        ModelsCommand::Recommend { all } => {
            let recs = twin.recommendations()?;
            if cli.json {
                print_json(&recs)?;
            } else {
                print!(
                    "{}",
                    recommend_table(
                        &models::Catalog::shipped(),
                        &recs.machine,
                        &recs.models,
                        *all
                    )
                );
            }
        }
        ModelsCommand::Use { model } => {
            let record = twin.use_model(model)?;
            if cli.json {
                print_json(&record)?;
            } else {
                println!("{} is now the active {} model", record.name, record.kind);
            }
        }
        ModelsCommand::Verify { model } => {
            let record = registry::find(store, model)?;
            registry::verify(&record, true)?;
            if cli.json {
                print_json(&serde_json::json!({"ok": true, "model": record}))?;
            } else {
                println!("{}: sha256 matches ({})", record.path, record.sha256);
            }
        }
        ModelsCommand::Rm { model } => {
            let record = registry::find(store, model)?;
            store.remove_model(record.id)?;
            if cli.json {
                print_json(&record)?;
            } else {
                println!(
                    "forgot {} (the file {} is untouched)",
                    record.name, record.path
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
