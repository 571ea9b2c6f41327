//! `twin bench …`: the benchmark tables (see `twin_core::bench`).

use crate::{draft_cmd, print_json, progress_bar, service, train_cmd, Cli};
use anyhow::{Context, Result};
use clap::Subcommand;
use std::path::PathBuf;
use std::process::ExitCode;
use twin_core::service::LibraryBenchSpec;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// The writing library: parse/chunk/embed throughput, embedding efficiency, search latency.
    Library {
        /// Large folder for the parse-only pass. Default: the Rust toolchain's HTML docs.
        #[arg(long)]
        tree: Option<PathBuf>,
        /// Smaller folder imported with embedding. Default: the Rust Book.
        #[arg(long)]
        subset: Option<PathBuf>,
        /// Library sizes (chunks) for search latency, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "10000,100000")]
        sizes: Vec<usize>,
        /// Queries per size.
        #[arg(long, default_value_t = 50)]
        queries: usize,
        /// Run only these parts (parse, pipeline, embed, search, search-real), comma-separated.
        #[arg(long, value_delimiter = ',')]
        only: Vec<twin_core::bench::BenchPart>,
    },
    /// Drafting: decode speed against bare llama.cpp, first-token latency, chain steps.
    Draft {
        /// Tokens generated per decode measurement.
        #[arg(long, default_value_t = 256)]
        tokens: usize,
        /// Repetitions of each first-token measurement.
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// Writing for the scratch library. Default: the sample writing.
        #[arg(long)]
        writing: Option<PathBuf>,
        #[command(flatten)]
        model: draft_cmd::ModelArgs,
    },
    /// Draft quality: drafts fixed topics in every format with each chain on your library and
    /// the active model (and adapter), and counts the publishable ones (draft health).
    Quality(draft_cmd::QualityArgs),
    /// Automatic retraining: one cycle on the sample writing in a scratch folder (time per
    /// phase, peak memory) and a draft's first token idle and while the cycle trains.
    Autotrain {
        /// Steps at most for the candidate (default: the training defaults).
        #[arg(long)]
        steps: Option<usize>,
        /// Drafts timed each way (at most 3).
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// Writing for the scratch library. Default: the sample writing.
        #[arg(long)]
        writing: Option<PathBuf>,
    },
    /// Preference training: adapters trained without the preference term and with each
    /// preference objective, on the sample writing: held-out margins and "sounds like you".
    Preference {
        /// Training steps of each adapter.
        #[arg(long, default_value_t = 30)]
        steps: usize,
        /// Preference objectives to compare with next-token training alone.
        #[arg(long, value_enum, value_delimiter = ',', default_values_t = [train_cmd::Objective::Dpo, train_cmd::Objective::LnDpo, train_cmd::Objective::Simpo])]
        objectives: Vec<train_cmd::Objective>,
        /// Drafts on held-out topics per adapter.
        #[arg(long, default_value_t = 12)]
        drafts: usize,
        /// Writing for the scratch library. Default: the sample writing.
        #[arg(long)]
        writing: Option<PathBuf>,
    },
    /// The local API: first token and decode speed through HTTP against the engine directly.
    Api {
        /// Timed requests each way.
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// Tokens per request at most.
        #[arg(long, default_value_t = 128)]
        tokens: usize,
    },
    /// Voice training: tokens/s and peak RSS of LoRA steps on the newest dataset.
    Train {
        /// Steps to time (after one warm-up step).
        #[arg(long, default_value_t = 6)]
        steps: usize,
        /// Targets, as for `twin train`.
        #[arg(long, value_delimiter = ',', default_value = "q,k,v,o,gate,up,down")]
        targets: Vec<twin_core::train::Target>,
        /// Tokens per packed sequence.
        #[arg(long, default_value_t = 512)]
        sequence_tokens: usize,
    },
}

pub(crate) fn print_table(rows: &[twin_core::bench::BenchRow]) {
    let w = rows
        .iter()
        .map(|r| r.metric.chars().count())
        .max()
        .unwrap_or(10);
    let v = rows
        .iter()
        .map(|r| r.value.chars().count())
        .max()
        .unwrap_or(10);
    println!("| {:w$} | {:v$} | note |", "metric", "value");
    println!("|{}|{}|------|", "-".repeat(w + 2), "-".repeat(v + 2));
    for r in rows {
        println!("| {:w$} | {:v$} | {} |", r.metric, r.value, r.note);
    }
}

fn bench_draft(
    cli: &Cli,
    tokens: usize,
    runs: usize,
    writing: &Option<PathBuf>,
    model: &draft_cmd::ModelArgs,
) -> Result<ExitCode> {
    let scratch = tempfile::tempdir().context("creating a scratch folder")?;
    let rows = service(cli)?.bench_draft(
        &model.choice(),
        writing.as_deref(),
        scratch.path(),
        tokens,
        runs,
    )?;
    print_rows(cli, &rows)
}

pub(crate) fn print_rows(cli: &Cli, rows: &[twin_core::bench::BenchRow]) -> Result<ExitCode> {
    if cli.json {
        print_json(&rows)?;
    } else {
        print_table(rows);
    }
    Ok(ExitCode::SUCCESS)
}

pub fn bench(cli: &Cli, cmd: &BenchCommand) -> Result<ExitCode> {
    let spec = match cmd {
        BenchCommand::Library {
            tree,
            subset,
            sizes,
            queries,
            only,
        } => LibraryBenchSpec {
            tree: tree.clone(),
            subset: subset.clone(),
            sizes: sizes.clone(),
            queries: *queries,
            parts: only.clone(),
        },
        BenchCommand::Draft {
            tokens,
            runs,
            writing,
            model,
        } => return bench_draft(cli, *tokens, *runs, writing, model),
        BenchCommand::Train {
            steps,
            targets,
            sequence_tokens,
        } => return train_cmd::bench_train(cli, *steps, targets, *sequence_tokens),
        BenchCommand::Quality(args) => return draft_cmd::bench_quality(cli, args),
        BenchCommand::Api { runs, tokens } => {
            let twin = std::sync::Arc::new(service(cli)?);
            crate::provision(cli, &twin)?;
            let rows = twin_api::bench::api_overhead(twin, *runs, *tokens)?;
            return print_rows(cli, &rows);
        }
        BenchCommand::Preference {
            steps,
            objectives,
            drafts,
            writing,
        } => {
            let scratch = tempfile::tempdir().context("creating a scratch folder")?;
            let objectives: Vec<_> = objectives.iter().map(|&o| o.into()).collect();
            let rows = service(cli)?.bench_preference(
                writing.as_deref(),
                scratch.path(),
                *steps,
                &objectives,
                *drafts,
            )?;
            return print_rows(cli, &rows);
        }
        BenchCommand::Autotrain {
            steps,
            runs,
            writing,
        } => {
            let scratch = tempfile::tempdir().context("creating a scratch folder")?;
            let rows =
                service(cli)?.bench_autotrain(writing.as_deref(), scratch.path(), *steps, *runs)?;
            return print_rows(cli, &rows);
        }
    };
    let scratch = tempfile::tempdir().context("creating a scratch folder")?;
    let bar = progress_bar::Bar::new(!cli.json);
    let rows = service(cli)?.bench_library(&spec, scratch.path(), &bar);
    bar.finish();
    print_rows(cli, &rows?)
}
