//! `twin bundle`: the twin in one file, to move it to another machine.

use crate::{print_json, progress_bar::Bar, service, Cli};
use anyhow::Result;
use std::path::PathBuf;
use std::process::ExitCode;

/// `twin bundle …`.
#[derive(clap::Subcommand)]
pub(crate) enum BundleCommand {
    /// Write the twin (adapters with their history and scores, style card, settings) to one
    /// file; the base model is not included.
    Export {
        /// The bundle to write (e.g. twin.twinpkg).
        file: PathBuf,
        /// Include the library (your imported writing, its vectors, datasets and drafts), so the
        /// twin drafts from the same writing on the other machine.
        #[arg(long)]
        with_library: bool,
    },
    /// Import a bundle into this data folder (with its library: an empty data folder).
    Import {
        /// The bundle.
        file: PathBuf,
        /// The base model's GGUF file, when it is not registered here or at its old path.
        #[arg(long, value_name = "FILE.gguf")]
        model: Option<PathBuf>,
    },
}

pub(crate) fn bundle_cmd(cli: &Cli, command: &BundleCommand) -> Result<ExitCode> {
    let twin = service(cli)?;
    let bar = Bar::new(!cli.json);
    let cancel = crate::cancel_on_ctrl_c();
    match command {
        BundleCommand::Export { file, with_library } => {
            let exported = twin.export_bundle(file, *with_library, &bar, &cancel);
            bar.finish();
            let exported = exported?;
            if cli.json {
                return print_json(&exported).map(|()| ExitCode::SUCCESS);
            }
            let m = &exported.manifest;
            println!(
                "wrote {} ({:.1} MB): base model {} (sha256 {}…), {} adapter(s), {} history entries{}",
                exported.path.display(),
                exported.size as f64 / 1e6,
                m.base_model.name,
                &m.base_model.sha256[..12],
                m.adapters.len(),
                m.activations.len(),
                if m.library.is_some() { ", the library" } else { "" },
            );
            for left in &exported.left_out {
                println!("left out: {left}: adapters travel with the active base model only");
            }
        }
        BundleCommand::Import { file, model } => {
            let imported = twin.import_bundle(file, model.as_deref(), &bar, &cancel);
            bar.finish();
            let imported = imported?;
            if cli.json {
                return print_json(&imported).map(|()| ExitCode::SUCCESS);
            }
            let m = &imported.manifest;
            println!(
                "imported the twin from {} (Twin {}): base model {} at {}, {} adapter(s){}",
                file.display(),
                m.twin_version,
                m.base_model.name,
                imported.base_model.display(),
                imported.adapters,
                if imported.library {
                    ", the library"
                } else {
                    ""
                },
            );
            if imported.reembed {
                println!(
                    "the library's embedding model was not here: run `twin import` to embed it again"
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
