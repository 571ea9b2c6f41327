//! `twin dataset`, `twin train` and `twin adapters`: voice training from the terminal.

use crate::{cancel_on_ctrl_c, open_library, print_json, progress_bar, Cli};
use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::path::PathBuf;
use std::process::ExitCode;
use twin_core::train::{self, adapters, Dataset, DatasetParams, TrainEvent, TrainParams};

#[derive(Subcommand)]
pub enum DatasetCommand {
    /// Build a new dataset version from the library (the local model back-translates each
    /// passage into the request it answers).
    Build {
        /// Share of each platform's documents held out for evaluation.
        #[arg(long, default_value_t = 0.15)]
        test_fraction: f64,
        /// Longest passage, in words.
        #[arg(long, default_value_t = 260)]
        max_words: usize,
        /// Shortest passage, in words.
        #[arg(long, default_value_t = 25)]
        min_words: usize,
        /// How the prompts name the author (default: the setting, else "the author").
        #[arg(long)]
        author: Option<String>,
        /// Chat model that writes the instructions and the replay answers (default: active).
        #[arg(long)]
        model: Option<String>,
        /// Training requests that also get the base model's own draft: the negatives "sounds
        /// like you" learns from and the rejected side of `train --preference`'s pairs (64 is
        /// one per request on a few dozen posts).
        #[arg(long, default_value_t = train::dataset::MACHINE_DRAFTS)]
        machine_drafts: usize,
    },
    /// Show a dataset version: counts, filters and a few examples.
    Show {
        /// Dataset id (a prefix is enough; default: the newest).
        id: Option<String>,
        /// Examples to print.
        #[arg(long, default_value_t = 3)]
        examples: usize,
    },
    /// List dataset versions.
    List,
    /// Write the preference pairs (your text against the model's, for the same request) as
    /// JSONL: your passages against the base model's drafts, and your edits of Twin's drafts.
    Preferences {
        /// Dataset id (default: the newest).
        id: Option<String>,
        /// Output file.
        #[arg(long, short)]
        out: PathBuf,
    },
    /// Write a dataset as JSONL (one chat per line).
    Export {
        /// Dataset id (default: the newest).
        id: Option<String>,
        /// Output file.
        #[arg(long, short)]
        out: PathBuf,
    },
}

#[derive(Args)]
pub struct TrainArgs {
    /// Dataset id (default: the newest).
    #[arg(long)]
    pub dataset: Option<String>,
    /// Base chat model (default: the active one).
    #[arg(long)]
    pub model: Option<String>,
    /// Adapter name (default: voice-<n>).
    #[arg(long)]
    pub name: Option<String>,
    /// LoRA rank.
    #[arg(long, default_value_t = 8)]
    pub rank: usize,
    /// LoRA alpha (the update is scaled by alpha / rank).
    #[arg(long, default_value_t = 16.0)]
    pub alpha: f32,
    /// Projections to adapt: q,k,v,o,gate,up,down.
    #[arg(long, value_delimiter = ',', default_value = "q,k,v,o,gate,up,down")]
    pub targets: Vec<train::Target>,
    /// Peak learning rate.
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// Passes over the data at most (early stopping may end sooner).
    #[arg(long, default_value_t = 3.0)]
    pub epochs: f64,
    /// Optimizer steps at most.
    #[arg(long)]
    pub max_steps: Option<usize>,
    /// Tokens per packed sequence.
    #[arg(long, default_value_t = 512)]
    pub sequence_tokens: usize,
    /// Sequences per optimizer step (gradient accumulation).
    #[arg(long, default_value_t = 1)]
    pub accumulation: usize,
    /// Evaluate held-out loss every N steps (0: four times per epoch).
    #[arg(long, default_value_t = 0)]
    pub eval_every: usize,
    /// Stop after this many evaluations without improvement.
    #[arg(long, default_value_t = 2)]
    pub patience: usize,
    /// Write a checkpoint every N steps.
    #[arg(long, default_value_t = 10)]
    pub checkpoint_every: usize,
    /// Also train a preference term: your passages over the base model's drafts for the
    /// same requests, and your edits over Twin's drafts.
    #[arg(long)]
    pub preference: bool,
    /// The preference objective for --preference (measured on the sample writing, see the
    /// README: length-normalised DPO raised the held-out margin and "sounds like you"; DPO
    /// did not move them; SimPO hurt).
    #[arg(long, value_enum, default_value_t = Objective::LnDpo)]
    pub objective: Objective,
    /// β for --preference (default: DPO 0.1, SimPO 2.0).
    #[arg(long)]
    pub beta: Option<f64>,
    /// Continue from this adapter (id or name; same targets and rank) instead of a fresh one.
    #[arg(long, value_name = "ADAPTER")]
    pub from: Option<String>,
    /// Print the plan (examples, tokens, steps, memory, ETA) without training.
    #[arg(long)]
    pub dry_run: bool,
}

/// `--objective`'s values.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Objective {
    /// Direct preference optimisation against the model with the adapter off.
    Dpo,
    /// Reference-free, length-normalised (SimPO).
    Simpo,
    /// DPO on per-token log-probabilities (length-normalised DPO).
    LnDpo,
}

impl From<Objective> for train::PreferenceObjective {
    fn from(o: Objective) -> Self {
        match o {
            Objective::Dpo => Self::Dpo,
            Objective::Simpo => Self::Simpo,
            Objective::LnDpo => Self::LnDpo,
        }
    }
}

impl TrainArgs {
    fn params(&self) -> TrainParams {
        let mut p = TrainParams::default();
        p.lora.rank = self.rank;
        p.lora.alpha = self.alpha;
        p.lora.targets = self.targets.clone();
        p.optimizer.learning_rate = self.lr;
        p.epochs = self.epochs;
        p.max_steps = self.max_steps;
        p.sequence_tokens = self.sequence_tokens;
        p.accumulation = self.accumulation;
        p.eval_every = self.eval_every;
        p.patience = self.patience;
        p.checkpoint_every = self.checkpoint_every;
        p.init_adapter = self.from.clone();
        p.preference = self.preference.then(|| {
            let objective = self.objective.into();
            let mut pp = train::PreferenceParams::new(objective);
            pp.beta = self.beta.unwrap_or(pp.beta);
            pp
        });
        p
    }
}

#[derive(Subcommand)]
pub enum AdaptersCommand {
    /// List trained adapters with their lineage and which channels use them.
    List,
    /// Use an adapter for drafting (for every format, or one platform's channel).
    Use {
        /// Adapter id or name; `none` for the base model alone.
        adapter: String,
        /// Strength (LoRA scale).
        #[arg(long, default_value_t = 1.0)]
        strength: f32,
        /// Only for this platform (linkedin, x, blog, newsletter).
        #[arg(long)]
        channel: Option<String>,
    },
    /// Go back to the adapter used before the current one.
    Rollback {
        /// Platform channel (default: the default channel).
        #[arg(long)]
        channel: Option<String>,
    },
    /// Delete an adapter.
    Rm {
        /// Adapter id or name.
        adapter: String,
    },
}

pub fn dataset_cmd(cli: &Cli, cmd: &DatasetCommand) -> Result<ExitCode> {
    let library = open_library(cli)?;
    match cmd {
        DatasetCommand::Build {
            test_fraction,
            max_words,
            min_words,
            author,
            model,
            machine_drafts,
        } => {
            let params = DatasetParams {
                test_fraction: *test_fraction,
                max_words: *max_words,
                min_words: *min_words,
                machine_drafts: *machine_drafts,
                ..Default::default()
            };
            let bar = progress_bar::Bar::new(!cli.json);
            let cancel = cancel_on_ctrl_c();
            let twin = crate::service(cli)?;
            let built = twin.build_dataset(params, author.clone(), model.as_deref(), &bar, &cancel);
            bar.finish();
            let dataset = built?;
            if cli.json {
                print_json(&dataset.record)?;
            } else {
                print_dataset(&dataset, 0);
            }
        }
        DatasetCommand::Show { id, examples } => {
            let dataset = Dataset::load(library.store(), id.as_deref())?;
            if cli.json {
                print_json(&serde_json::json!({
                    "dataset": dataset.record,
                    "examples": dataset.examples.iter().take(*examples).collect::<Vec<_>>(),
                }))?;
            } else {
                print_dataset(&dataset, *examples);
            }
        }
        DatasetCommand::Preferences { id, out } => {
            let pairs = crate::service(cli)?.preference_pairs(id.as_deref())?;
            let jsonl = train::preferences::to_jsonl(&pairs);
            std::fs::write(out, jsonl)
                .with_context(|| format!("{}: cannot write", out.display()))?;
            let edits = pairs
                .iter()
                .filter(|p| p.source == train::preferences::PairSource::Edit)
                .count();
            eprintln!(
                "wrote {} preference pairs ({} from your edits) to {}",
                pairs.len(),
                edits,
                out.display()
            );
        }
        DatasetCommand::List => {
            let all = library.store().datasets()?;
            if cli.json {
                print_json(&all)?;
            } else {
                for d in all {
                    println!(
                        "{}  {}  train {} + replay {}, test {}",
                        d.id,
                        d.created_at,
                        d.stats["train_user"],
                        d.stats["train_replay"],
                        d.stats["test_user"]
                    );
                }
            }
        }
        DatasetCommand::Export { id, out } => {
            let dataset = Dataset::load(library.store(), id.as_deref())?;
            std::fs::write(out, dataset.to_jsonl())
                .with_context(|| format!("{}: cannot write", out.display()))?;
            eprintln!(
                "wrote {} examples of dataset {} to {}",
                dataset.examples.len(),
                dataset.record.id,
                out.display()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_dataset(dataset: &Dataset, examples: usize) {
    let s = &dataset.record.stats;
    println!("dataset {}", dataset.record.id);
    println!(
        "  documents {} ({} held out), examples: train {} of your own + {} replay, test {}",
        s["documents"], s["test_documents"], s["train_user"], s["train_replay"], s["test_user"]
    );
    println!(
        "  words of your writing in training: {}; per platform: {}",
        s["train_words"], s["platforms"]
    );
    println!("  filtered: {}", s["filtered"]);
    println!("  built with: {}", dataset.record.params);
    for e in dataset.examples.iter().take(examples) {
        // The request line of a drafting prompt; a replay example's generic request whole.
        let request = match &e.request {
            Some((format, topic)) => format!("Write a {} about: {topic}", format.display_name()),
            None => e
                .messages
                .last()
                .map(|m| m.content.lines().next().unwrap_or("").to_string())
                .unwrap_or_default(),
        };
        println!(
            "\n── {} · {} · {}",
            e.split,
            e.kind,
            e.document_path.as_deref().unwrap_or("(generic request)")
        );
        println!("request: {request}");
        let reply: String = e.reply.chars().take(300).collect();
        println!(
            "reply:   {reply}{}",
            if e.reply.chars().count() > 300 {
                "…"
            } else {
                ""
            }
        );
    }
}

fn human_bytes(b: u64) -> String {
    format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64)
}

fn human_secs(s: f64) -> String {
    if s >= 90.0 {
        format!("{:.0} min {:02.0} s", (s / 60.0).floor(), s % 60.0)
    } else {
        format!("{s:.0} s")
    }
}

pub fn train_cmd(cli: &Cli, args: &TrainArgs) -> Result<ExitCode> {
    let twin = crate::service(cli)?;
    let (model, dataset) = (args.model.as_deref(), args.dataset.as_deref());
    let params = args.params();
    if args.dry_run {
        let plan = twin.train_plan(model, dataset, &params)?;
        if cli.json {
            print_json(&plan)?;
            return Ok(ExitCode::SUCCESS);
        }
        println!("plan on dataset {}", plan.dataset);
        println!(
            "  model: {} · {} layers · {:.0}M parameters",
            plan.shape.architecture,
            plan.shape.layers,
            plan.shape.parameters() as f64 / 1e6
        );
        println!(
            "  examples: {} training, {} held out",
            plan.train_examples, plan.test_examples
        );
        println!(
            "  tokens per epoch: {} computed in {} packed sequences of ≤ {} tokens ({} in the examples, shared prompt beginnings run once; {} are replies, where the loss is)",
            plan.tokens_per_epoch, plan.sequences_per_epoch, params.sequence_tokens, plan.example_tokens_per_epoch, plan.reply_tokens_per_epoch
        );
        println!(
            "  steps: {} (≤ {} epochs, accumulation {}) · LoRA rank {} on {:?}: {} trainable parameters",
            plan.steps, params.epochs, params.accumulation, params.lora.rank, params.lora.targets, plan.lora_parameters
        );
        println!("  memory: about {}", human_bytes(plan.memory_bytes));
        if let (Some(rate), Some(eta)) = (plan.measured_tokens_per_second, plan.eta_seconds) {
            println!(
                "  speed on this machine: {rate:.0} tokens/s → about {} (early stopping may end sooner)",
                human_secs(eta)
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    let cancel = cancel_on_ctrl_c();
    let bar = ProgressBar::with_draw_target(
        None,
        if cli.json {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        },
    );
    bar.set_style(
        ProgressStyle::with_template("training [{bar:30}] {pos}/{len} steps {wide_msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let mut last_eval = String::new();
    let json = cli.json;
    let result = twin.train(
        model,
        dataset,
        &params,
        args.name.as_deref(),
        &cancel,
        &mut |event| {
            if json {
                println!("{}", serde_json::to_string(&event).unwrap_or_default());
                return;
            }
            match event {
                TrainEvent::Started {
                    step, total_steps, ..
                } => {
                    bar.set_length(total_steps as u64);
                    bar.set_position(step as u64);
                    if step > 0 {
                        bar.println(format!("resuming from the checkpoint at step {step}"));
                    }
                }
                TrainEvent::Step {
                    step,
                    loss,
                    tokens_per_second,
                    eta_seconds,
                    ..
                } => {
                    bar.set_position(step as u64);
                    bar.set_message(format!(
                        "loss {loss:.3}{last_eval} · {tokens_per_second:.0} tok/s · eta {}",
                        human_secs(eta_seconds)
                    ));
                }
                TrainEvent::Eval { step, loss, best } => {
                    last_eval = format!(" · held-out {loss:.3}");
                    bar.println(format!(
                        "step {step}: held-out loss {loss:.4} (best {best:.4})"
                    ));
                }
                TrainEvent::Checkpoint { .. } => {}
                TrainEvent::EarlyStop { step } => {
                    bar.println(format!(
                        "held-out loss stopped improving; stopping at step {step}"
                    ));
                }
            }
        },
    );
    bar.finish_and_clear();
    let outcome = result?;
    if json {
        crate::draft_cmd::keep_prompt_heads(&twin, true);
        print_json(&outcome)?;
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "adapter {} (#{}) trained: held-out loss {:.4} → {:.4} ({:+.1}%), {} steps in {}, {:.0} tokens/s",
        outcome.adapter.name,
        outcome.adapter.id,
        outcome.base_eval_loss,
        outcome.best_eval_loss,
        (outcome.best_eval_loss / outcome.base_eval_loss - 1.0) * 100.0,
        outcome.steps,
        human_secs(outcome.seconds),
        outcome.tokens_per_second
    );
    println!(
        "saved to {}; drafts now use it (`twin adapters rollback` to undo)",
        outcome.adapter.path
    );
    // The new adapter is in use: evaluate the drafts' shared prompt heads with it now, at the
    // end of a long wait, rather than at the start of the next draft.
    crate::draft_cmd::keep_prompt_heads(&twin, false);
    Ok(ExitCode::SUCCESS)
}

pub fn adapters_cmd(cli: &Cli, cmd: &AdaptersCommand) -> Result<ExitCode> {
    let twin = crate::service(cli)?;
    match cmd {
        AdaptersCommand::List => {
            let overview = twin.adapters()?;
            if cli.json {
                print_json(&overview)?;
                return Ok(ExitCode::SUCCESS);
            }
            if overview.adapters.is_empty() {
                println!("no adapters yet; train one with `twin train`");
            }
            for a in &overview.adapters {
                let used: Vec<String> = overview
                    .active
                    .iter()
                    .filter(|c| c.adapter.as_ref().is_some_and(|x| x.id == a.id))
                    .map(|c| format!("{}@{}", c.channel, c.scale))
                    .collect();
                println!(
                    "#{} {}{}",
                    a.id,
                    a.name,
                    if used.is_empty() {
                        String::new()
                    } else {
                        format!("  [in use: {}]", used.join(", "))
                    }
                );
                println!(
                    "    base {} ({}…) · dataset {} · held-out loss {:.3} → {:.3} · rank {} · {} KiB",
                    a.base_name,
                    &a.base_sha256[..12.min(a.base_sha256.len())],
                    a.dataset_id,
                    a.metrics["base_eval_loss"].as_f64().unwrap_or(f64::NAN),
                    a.metrics["best_eval_loss"].as_f64().unwrap_or(f64::NAN),
                    a.params["lora"]["rank"],
                    a.size / 1024
                );
            }
        }
        AdaptersCommand::Use {
            adapter,
            strength,
            channel,
        } => {
            let query = (adapter != "none").then_some(adapter.as_str());
            let strength = if query.is_some() { *strength } else { 0.0 };
            let used = twin.use_adapter(query, strength, channel.as_deref())?;
            let channel = channel.as_deref().unwrap_or(adapters::DEFAULT_CHANNEL);
            match used {
                Some(a) => println!("{channel}: {} (#{}) at strength {strength}", a.name, a.id),
                None => println!("{channel}: base model only"),
            }
        }
        AdaptersCommand::Rollback { channel } => match twin.rollback_adapter(channel.as_deref())? {
            None => println!(
                "{}: nothing to roll back",
                channel.as_deref().unwrap_or(adapters::DEFAULT_CHANNEL)
            ),
            Some(now) => match now.adapter {
                Some(a) => println!(
                    "{}: back to {} (#{}) at strength {}",
                    now.channel, a.name, a.id, now.scale
                ),
                None => println!("{}: back to the base model", now.channel),
            },
        },
        AdaptersCommand::Rm { adapter } => {
            let library = twin.open_library()?;
            let a = adapters::find(library.store(), adapter)?;
            adapters::remove(library.store(), &a)?;
            println!("removed {} (#{}) and {}", a.name, a.id, a.path);
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn bench_train(
    cli: &Cli,
    steps: usize,
    targets: &[train::Target],
    sequence_tokens: usize,
) -> Result<ExitCode> {
    let mut params = TrainParams::default();
    params.lora.targets = targets.to_vec();
    params.sequence_tokens = sequence_tokens;
    let rows = crate::service(cli)?.bench_train(&params, steps)?;
    crate::bench_cmd::print_rows(cli, &rows)
}
