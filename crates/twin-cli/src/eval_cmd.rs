//! `twin eval`: run an evaluation, show or list runs, compare two.

use crate::{cancel_on_ctrl_c, open_library, print_json, progress_bar, Cli};
use anyhow::{bail, Result};
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;
use twin_core::eval::{self, report, EvalParams, Summary};

/// `twin eval` arguments.
#[derive(Args)]
pub struct EvalArgs {
    /// Compare two runs side by side (run ids).
    #[arg(long, num_args = 2, value_names = ["A", "B"], conflicts_with_all = ["show", "list"])]
    pub compare: Option<Vec<i64>>,
    /// Show a stored run's report again (recomputed from its measurements).
    #[arg(long, value_name = "RUN", conflicts_with = "list")]
    pub show: Option<i64>,
    /// List stored runs.
    #[arg(long)]
    pub list: bool,
    /// Dataset whose held-out split is evaluated (default: the newest).
    #[arg(long)]
    pub dataset: Option<String>,
    /// Adapter(s) to draft with (id or name; default: the one in use, else the newest).
    #[arg(long = "adapter")]
    pub adapters: Vec<String>,
    /// Chat model (default: the active one).
    #[arg(long)]
    pub model: Option<String>,
    /// Held-out topics drafted per configuration.
    #[arg(long, default_value_t = 6)]
    pub drafts: usize,
    /// Retrieval queries at most.
    #[arg(long, default_value_t = 40)]
    pub queries: usize,
    /// Skip the local judge.
    #[arg(long)]
    pub no_judge: bool,
    /// Judge model (default: the largest registered chat model).
    #[arg(long)]
    pub judge_model: Option<String>,
    /// Author's name as the prompts use it (default: the setting, else "the author").
    #[arg(long)]
    pub author: Option<String>,
    /// Folder for the HTML and JSON report (default: <data dir>/reports).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Run `twin eval`.
pub fn eval_cmd(cli: &Cli, args: &EvalArgs) -> Result<ExitCode> {
    let library = open_library(cli)?;
    if args.list {
        let runs = library.store().eval_runs(100)?;
        if cli.json {
            print_json(&runs)?;
        } else {
            for r in runs {
                println!(
                    "#{:<4} {:<9} dataset {} · {}",
                    r.id,
                    r.status,
                    &r.dataset_id[..12.min(r.dataset_id.len())],
                    r.created_at
                );
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(ids) = &args.compare {
        let [a, b] = ids[..] else {
            bail!("--compare takes two run ids");
        };
        let rows = report::compare_runs(library.store(), a, b)?;
        if cli.json {
            print_json(&rows)?;
        } else {
            println!(
                "{:<44} {:>12} {:>12} {:>10}",
                "metric",
                format!("#{a}"),
                format!("#{b}"),
                "change"
            );
            for r in rows {
                let f = |v: Option<f64>| v.map_or("–".to_string(), |v| format!("{v:.4}"));
                let change = match (r.a, r.b) {
                    (Some(x), Some(y)) => format!("{:+.4}", y - x),
                    _ => String::new(),
                };
                println!(
                    "{:<44} {:>12} {:>12} {:>10}",
                    r.metric,
                    f(r.a),
                    f(r.b),
                    change
                );
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let (summary, (json_path, html_path)) = match args.show {
        Some(id) => {
            let summary = Summary::load(library.store(), id)?;
            let dir = args
                .out
                .clone()
                .unwrap_or_else(|| library.data_dir().join("reports"));
            let files = eval::write_report(&summary, &dir)?;
            (summary, files)
        }
        None => {
            let params = EvalParams {
                dataset: args.dataset.clone(),
                adapters: args.adapters.clone(),
                drafts: args.drafts,
                queries: args.queries,
                judge: !args.no_judge,
                judge_model: args.judge_model.clone(),
                ..Default::default()
            };
            let bar = progress_bar::Bar::new(!cli.json);
            let cancel = cancel_on_ctrl_c();
            let twin = crate::service(cli)?;
            let (model, out) = (args.model.as_deref(), args.out.as_deref());
            let result = twin.evaluate(params, args.author.clone(), model, out, &bar, &cancel);
            bar.finish();
            let done = result?;
            if done.resumed {
                eprintln!("resumed evaluation #{}", done.summary.run.id);
            }
            (done.summary, done.files)
        }
    };
    if cli.json {
        print_json(&summary)?;
    } else {
        print_summary(&summary);
        println!(
            "\nreport: {}\n        {}",
            html_path.display(),
            json_path.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn print_summary(s: &Summary) {
    println!(
        "evaluation #{} ({}), {} held-out passages, {} words",
        s.run.id, s.run.status, s.heldout_examples, s.heldout_words
    );
    println!("\nheld-out perplexity (lower is better)");
    for p in &s.perplexity {
        println!(
            "  {:<40} {:>8.3}  ({} tokens)",
            p.label, p.perplexity, p.tokens
        );
    }
    println!("\nstyle distance to your held-out writing (1.0 = as far as other writers)");
    for r in s.style.iter().filter(|r| r.config != "heldout") {
        println!(
            "  {:<40} {:>8.3}  Delta {:.3} · sentence W1 {:.2} · punctuation {:.2} · ΔMATTR {:.3}",
            r.label,
            r.relative,
            r.distance.delta,
            r.distance.sentence_length,
            r.distance.punctuation,
            r.distance.richness
        );
    }
    println!("\nsounds like you (mean probability)");
    for a in &s.authorship {
        println!(
            "  {:<40} {:>7.0}%  ({} texts)",
            a.label,
            a.mean * 100.0,
            a.values.len()
        );
    }
    if !s.health.is_empty() {
        println!("\ndraft health (publishable as they are)");
        for h in &s.health {
            let failed: Vec<String> = h.failed.iter().map(|(n, k)| format!("{n} {k}")).collect();
            println!(
                "  {:<40} {}/{} ({:.0}%){}",
                h.label,
                h.publishable,
                h.drafts,
                h.rate() * 100.0,
                if failed.is_empty() {
                    String::new()
                } else {
                    format!("  failed: {}", failed.join(", "))
                }
            );
        }
    }
    if let Some(a) = s.authorship_auc {
        println!(
            "  AUC, your held-out writing vs the base model's drafts: {a:.2} (1 = always told apart, 0.5 = chance)"
        );
    }
    println!("\nretrieval (queries from held-out passages)");
    for r in &s.retrieval {
        println!(
            "  {:<8} recall@1 {:.3} · @5 {:.3} · @10 {:.3} · MRR {:.3}  ({} queries, {} model-written)",
            r.retriever,
            r.recall_at.get(&1).copied().unwrap_or(0.0),
            r.recall_at.get(&5).copied().unwrap_or(0.0),
            r.recall_at.get(&10).copied().unwrap_or(0.0),
            r.mrr,
            r.queries,
            r.model_written
        );
    }
    if let Some(note) = s.settings.as_ref().and_then(|x| x.judge_note.as_deref()) {
        println!("\nlocal judge: {note}");
    }
    if !s.judge.is_empty() {
        println!("\nlocal judge (1–3)");
        for j in &s.judge {
            println!(
                "  {:<40} accuracy {:.2} · style {:.2}  ({} drafts)",
                j.label, j.accuracy, j.style, j.drafts
            );
        }
    }
}
