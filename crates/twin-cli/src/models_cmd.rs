//! `twin models …`: the model registry from the terminal.

use crate::{data_dir, open_library, print_json, progress_bar::Bar, Cli};
use anyhow::{Context, Result};
use clap::Subcommand;
use std::path::PathBuf;
use std::process::ExitCode;
use twin_core::models::{self, registry, ModelKind, PullRequest};

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
    /// Download a GGUF file from Hugging Face ($HF_ENDPOINT overrides the hub); resumes.
    Pull {
        /// Repository, owner/name.
        repo: String,
        /// File in the repository.
        file: String,
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

pub fn run(cli: &Cli, cmd: &ModelsCommand) -> Result<ExitCode> {
    let mut library = open_library(cli)?;
    let store = library.store();
    match cmd {
        ModelsCommand::Import { folder, f32 } => {
            let dir = data_dir(cli)?.join("models");
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            let name = folder
                .canonicalize()
                .with_context(|| format!("{}: no such folder", folder.display()))?
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "embedding".into());
            let out = dir.join(format!("{name}.{}.gguf", if *f32 { "f32" } else { "f16" }));
            let converted = models::convert_sentence_transformer(
                folder,
                &out,
                &models::ConvertOptions { f16: !f32 },
            )?;
            // A cross-encoder becomes the active reranker; anything else the library's
            // embedding model.
            let reset = !converted.reranker && library.set_embedding_model(&converted.path)?;
            let record = registry::register(
                library.store(),
                &converted.path,
                "converted",
                Some(&name),
                None,
            )?;
            if converted.reranker {
                registry::set_active(library.store(), &record)?;
            }
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
            let registered = store.models()?;
            let active: Vec<i64> = [ModelKind::Chat, ModelKind::Reranker]
                .into_iter()
                .filter_map(|k| registry::active(store, k).ok().flatten().map(|m| m.id))
                .collect();
            let found: Vec<_> = models::discover(&home())
                .into_iter()
                .filter(|d| {
                    let p = std::fs::canonicalize(&d.path).unwrap_or(d.path.clone());
                    !registered
                        .iter()
                        .any(|m| std::path::Path::new(&m.path) == p)
                })
                .collect();
            if cli.json {
                print_json(
                    &serde_json::json!({"registered": registered, "active": active, "found": found}),
                )?;
            } else {
                if registered.is_empty() {
                    println!("no models registered: twin models add <file.gguf>");
                }
                for m in &registered {
                    println!("{}", show(m, active.contains(&m.id)));
                }
                if !found.is_empty() {
                    println!("\nfound on this machine (register with `twin models adopt <name>`):");
                    for d in &found {
                        println!("    {:<8} {:<40} {}", d.origin, d.name, d.path.display());
                    }
                }
            }
        }
        ModelsCommand::Add { file, name } => {
            let record = registry::register(store, file, "added", name.as_deref(), None)?;
            if record.kind == ModelKind::Chat.as_str()
                && registry::active(store, ModelKind::Chat)?.map(|m| m.id) == Some(record.id)
            {
                registry::set_active(store, &record)?;
            }
            if cli.json {
                print_json(&record)?;
            } else {
                println!("{}", show(&record, false));
            }
        }
        ModelsCommand::Adopt { name } => {
            let found = models::discover(&home())
                .into_iter()
                .find(|d| d.name == *name)
                .with_context(|| format!("no model named {name:?} in Ollama's or LM Studio's folders; see `twin models list`"))?;
            let record = registry::register(
                store,
                &found.path,
                &found.origin,
                Some(&found.name),
                found.sha256.as_deref(),
            )?;
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
            let mut request = PullRequest::new(repo, file);
            request.revision = revision.clone();
            let bar = Bar::new(!cli.json);
            let cancel = crate::cancel_on_ctrl_c();
            let dir = data_dir(cli)?.join("models");
            let pulled = models::pull(&request, &dir, &bar, &cancel);
            bar.finish();
            let (path, sha256) = pulled?;
            let record = registry::register(store, &path, "pulled", None, Some(&sha256))?;
            if cli.json {
                print_json(&record)?;
            } else {
                println!("{}", show(&record, false));
            }
        }
        ModelsCommand::Use { model } => {
            let record = registry::find(store, model)?;
            registry::verify(&record, false)?;
            registry::set_active(store, &record)?;
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
