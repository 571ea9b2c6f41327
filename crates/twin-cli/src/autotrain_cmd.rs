//! `twin autotrain`: automatic retraining's status, history, switch, and a cycle run now.

use crate::{cancel_on_ctrl_c, print_json, service, Cli};
use anyhow::Result;
use clap::Subcommand;
use std::process::ExitCode;
use twin_core::autotrain::{AutotrainEvent, AutotrainSettings, Cycle};
use twin_core::service::CycleOverrides;
use twin_core::store::RunStatus;

#[derive(Subcommand)]
pub enum AutotrainCommand {
    /// Whether automation is on, the writing waiting, and the cycles running and last.
    Status,
    /// Run a cycle now in the foreground. An interrupted cycle resumes first, with the
    /// settings it started with; the options apply to a new one.
    Run {
        /// Optimizer steps at most for the candidate.
        #[arg(long)]
        steps: Option<usize>,
        /// Learning rate for the candidate.
        #[arg(long)]
        learning_rate: Option<f64>,
        /// Drafts on held-out topics per side in the comparison.
        #[arg(long)]
        drafts: Option<usize>,
    },
    /// Turn automation on, optionally changing when it runs and what a candidate must show.
    Enable {
        /// New or edited words that wake a cycle.
        #[arg(long)]
        min_words: Option<usize>,
        /// Days after which a cycle runs anyway, if anything changed.
        #[arg(long)]
        every_days: Option<u32>,
        /// Held-out loss improvement a candidate needs, in percent.
        #[arg(long)]
        margin: Option<f64>,
        /// Drafts on held-out topics per side in the comparison.
        #[arg(long)]
        drafts: Option<usize>,
        /// Optimizer steps at most per candidate (0: the training defaults).
        #[arg(long)]
        steps: Option<usize>,
        /// Train candidates with the preference term (LN-DPO by default): on or off.
        #[arg(long, value_name = "on|off", value_parser = ["on", "off"])]
        preference: Option<String>,
    },
    /// Turn automation off (a running cycle stops and resumes when turned on again).
    Disable,
    /// Every cycle: trigger, scores, and whether the candidate was put to use, and why.
    History {
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
}

pub fn run(cli: &Cli, command: &AutotrainCommand) -> Result<ExitCode> {
    let twin = service(cli)?;
    match command {
        AutotrainCommand::Status => {
            let status = twin.autotrain_status()?;
            if cli.json {
                return print_json(&status).map(|()| ExitCode::SUCCESS);
            }
            let s = &status.settings;
            println!(
                "automatic training: {} (a cycle after {} new words, or every {} days if anything changed; a candidate needs {:.1}% lower held-out loss)",
                if s.enabled { "on" } else { "off" },
                s.min_words,
                s.every_days,
                s.margin * 100.0
            );
            println!(
                "new writing since the last cycle: {} words in {} documents{}",
                status.pending.words,
                status.pending.documents,
                if status.pending.new_platforms.is_empty() {
                    String::new()
                } else {
                    format!(
                        ", new platforms: {}",
                        status.pending.new_platforms.join(", ")
                    )
                }
            );
            if let Some(c) = &status.unfinished {
                let step = status
                    .training_step
                    .map(|(s, t)| format!(", step {s} of {t}"))
                    .unwrap_or_default();
                println!(
                    "cycle {} is {} at {}{step} (it resumes on the next start)",
                    c.id,
                    c.status.as_str(),
                    c.phase
                );
            } else if let Some(t) = status.due {
                println!("a cycle is due ({})", t.as_str());
            }
            if let Some(c) = &status.last {
                println!("last: {}", summary(c));
            }
        }
        AutotrainCommand::Run {
            steps,
            learning_rate,
            drafts,
        } => {
            let bar = crate::progress_bar::Bar::new(!cli.json);
            let cancel = cancel_on_ctrl_c();
            let json = cli.json;
            let on_event = |e: AutotrainEvent| match e {
                AutotrainEvent::Progress {
                    phase, fraction, ..
                } if !json => bar.fraction(&phase, fraction),
                AutotrainEvent::Paused { .. } if !json => {
                    bar.message("waiting while you work");
                }
                _ => {}
            };
            let overrides = CycleOverrides {
                max_steps: *steps,
                learning_rate: *learning_rate,
                drafts: *drafts,
            };
            let done = twin.autotrain_run(&overrides, &on_event, &cancel);
            bar.finish();
            let cycle = done?;
            if json {
                print_json(&cycle)?;
            } else {
                println!("{}", summary(&cycle));
            }
        }
        AutotrainCommand::Enable {
            min_words,
            every_days,
            margin,
            drafts,
            steps,
            preference,
        } => {
            let mut s = twin.autotrain_settings()?;
            if let Some(p) = preference {
                s.preference = p == "on";
            }
            s.enabled = true;
            s.min_words = min_words.unwrap_or(s.min_words);
            s.every_days = every_days.unwrap_or(s.every_days);
            s.margin = margin.map_or(s.margin, |m| m / 100.0);
            s.drafts = drafts.unwrap_or(s.drafts);
            if let Some(n) = steps {
                s.max_steps = (*n > 0).then_some(*n);
            }
            twin.save_autotrain_settings(&s)?;
            report_settings(cli, &s)?;
        }
        AutotrainCommand::Disable => {
            let mut s = twin.autotrain_settings()?;
            s.enabled = false;
            twin.save_autotrain_settings(&s)?;
            report_settings(cli, &s)?;
        }
        AutotrainCommand::History { limit } => {
            let cycles = twin.autotrain_history(*limit)?;
            if cli.json {
                return print_json(&cycles).map(|()| ExitCode::SUCCESS);
            }
            if cycles.is_empty() {
                println!("no training cycle yet");
            }
            for c in &cycles {
                println!("{}", summary(c));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn report_settings(cli: &Cli, s: &AutotrainSettings) -> Result<()> {
    if cli.json {
        return print_json(s);
    }
    println!(
        "automatic training is {}",
        if s.enabled { "on" } else { "off" }
    );
    Ok(())
}

/// One line per cycle: when, why, what came of it.
pub fn summary(c: &Cycle) -> String {
    let candidate = c.candidate_name.as_deref().unwrap_or("no candidate");
    let outcome = match c.status {
        RunStatus::Done if c.promoted => format!("{candidate} put to use"),
        RunStatus::Done => format!("{candidate} not used, kept {}", c.incumbent_name),
        RunStatus::Failed => format!(
            "failed: {}",
            c.error.as_deref().unwrap_or("(no error recorded)")
        ),
        RunStatus::Running | RunStatus::Cancelled => {
            format!("interrupted at {} (resumes)", c.phase)
        }
    };
    let reason = c
        .reason
        .as_ref()
        .map(|r| format!(" — {r}"))
        .unwrap_or_default();
    let seconds: f64 = c.scores.seconds.values().sum();
    format!(
        "cycle {} ({}, {} new words): {outcome}{reason} [{seconds:.0} s]",
        c.id, c.trigger, c.change.words
    )
}
