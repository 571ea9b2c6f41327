//! `twin draft`, `twin traces` and `twin style`: the drafting pipeline from the terminal.

use crate::progress_bar::StepSpinner;
use crate::{cancel_on_ctrl_c, open_library, print_json, Cli};
use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use twin_core::draft::{self, DraftEvent, Format};
use twin_core::service::{DraftSetup, DraftSpec, ModelChoice};
use twin_core::train::adapters::AdapterPick;

#[derive(Args)]
pub struct ModelArgs {
    /// Chat model to use (id, name or path; default: the active one).
    #[arg(long)]
    pub model: Option<String>,
    /// Context window in tokens (default: the model's, capped at 8192).
    #[arg(long, default_value_t = 0)]
    pub ctx: u32,
    /// Layers to offload to the GPU (default: the setting; else as many as fit, on GPU builds).
    #[arg(long)]
    pub gpu_layers: Option<u32>,
    /// Voice adapter: a registered adapter's id or name, or a GGUF LoRA file (default: the
    /// one in use for the format's platform, else the default one; see `twin adapters`).
    #[arg(long, conflicts_with = "no_adapter")]
    pub adapter: Option<String>,
    /// Use the base model alone.
    #[arg(long)]
    pub no_adapter: bool,
}

impl ModelArgs {
    pub fn choice(&self) -> ModelChoice {
        ModelChoice {
            model: self.model.clone(),
            context_tokens: self.ctx,
            gpu_layers: self.gpu_layers,
            adapter: match (&self.adapter, self.no_adapter) {
                (_, true) => AdapterPick::BaseModel,
                (Some(a), _) => AdapterPick::Named(a.clone()),
                (None, false) => AdapterPick::InUse,
            },
        }
    }
}

#[derive(Args)]
pub struct DraftArgs {
    /// What to write about.
    pub topic: String,
    /// linkedin, thread, article or newsletter.
    #[arg(long, short, default_value = "linkedin")]
    pub format: Format,
    /// Skip self-critique and revision.
    #[arg(long)]
    pub draft_only: bool,
    /// The writing steps: direct (one grounded pass), outlined (plan, then write) or full
    /// (plan, write, critique, revise). Default: the model's profile (small models: full for
    /// posts, outlined for long texts).
    #[arg(long)]
    pub chain: Option<draft::Chain>,
    /// Alternative search queries the model writes (0 = search the topic only). Default: the
    /// model's profile (3).
    #[arg(long)]
    pub expansions: Option<usize>,
    /// Do not extract platform/date filters from the topic.
    #[arg(long)]
    pub no_self_query: bool,
    /// Keep the fused search order even when a reranker model is configured.
    #[arg(long)]
    pub no_rerank: bool,
    /// Retrieved passages in the prompt at most. Default: the model's profile (small models:
    /// 3 for posts, 6 for articles and newsletters)
    #[arg(long)]
    pub context_chunks: Option<usize>,
    /// Sampling temperature (0 = greedy).
    #[arg(long, default_value_t = 0.7)]
    pub temperature: f32,
    /// Random seed (the same seed gives the same draft).
    #[arg(long)]
    pub seed: Option<u32>,
    /// Adapter strength (LoRA scale; default: the strength chosen with `twin adapters use`).
    #[arg(long, alias = "adapter-scale")]
    pub strength: Option<f32>,
    /// How the prompts name the author (default: the setting, else "the author").
    #[arg(long)]
    pub author: Option<String>,
    /// Show every chain step as it streams, not only the final text.
    #[arg(long, short)]
    pub verbose: bool,
    #[command(flatten)]
    pub model: ModelArgs,
}

#[derive(Subcommand)]
pub enum TracesCommand {
    /// Show one trace in full.
    Show {
        /// Trace id.
        id: i64,
    },
}

#[derive(Args)]
pub struct StyleArgs {
    /// Replace the card with the contents of this file.
    #[arg(long)]
    pub set: Option<PathBuf>,
    /// Go back to the card computed from your writing.
    #[arg(long)]
    pub reset: bool,
}

pub fn draft_cmd(cli: &Cli, args: &DraftArgs) -> Result<ExitCode> {
    let twin = crate::service(cli)?;
    crate::provision(cli, &twin)?;
    let mut spec = DraftSpec::new(args.topic.clone(), args.format);
    let request = &mut spec.request;
    request.draft_only = args.draft_only;
    request.chain = args.chain;
    request.expansions = args.expansions;
    request.self_query = !args.no_self_query;
    request.rerank = !args.no_rerank;
    request.context_chunks = args.context_chunks;
    request.sampling.temperature = args.temperature;
    if let Some(seed) = args.seed {
        request.sampling.seed = seed;
    }
    spec.strength = args.strength;
    spec.author = args.author.clone();
    spec.model = args.model.choice();
    let cancel = cancel_on_ctrl_c();
    let json = cli.json;
    let verbose = args.verbose;
    let mut stdout = std::io::stdout();
    let on_setup = |s: &DraftSetup| {
        if !json {
            eprintln!(
                "model: {} ({}), {:?} chain",
                s.model, s.chat_template, s.chain
            );
            if let Some(label) = &s.adapter {
                eprintln!("voice adapter: {label} at strength {}", s.strength);
            }
        }
    };
    let mut spinner = StepSpinner::new(!json && std::io::stderr().is_terminal());
    let result = twin.draft(&spec, &cancel, on_setup, &mut |event| {
        if json {
            return;
        }
        match event {
            DraftEvent::Step { name } => {
                spinner.clear();
                eprintln!("\n── {name} ──");
                spinner.start(step_activity(&name));
            }
            // Only the draft itself goes to stdout; the other steps with --verbose to stderr.
            DraftEvent::Text { step, text } => {
                if draft::profile::writes_draft_text(&step) {
                    spinner.clear();
                    let _ = write!(stdout, "{text}");
                    let _ = stdout.flush();
                } else if verbose {
                    spinner.clear();
                    eprint!("{text}");
                }
            }
            DraftEvent::Context { citations } => {
                eprintln!("{} sources chosen", citations.len());
            }
            // A terminal cannot take back what it printed: the final text follows the stream.
            DraftEvent::Preview { .. } => {}
        }
    });
    spinner.clear();
    let outcome = result?;
    if json {
        print_json(&outcome)?;
        return Ok(ExitCode::SUCCESS);
    }
    let draft = &outcome.draft;
    println!(
        "\n\n══ {} ({} words) ══\n",
        args.format.display_name(),
        draft.words
    );
    for (i, p) in draft.paragraphs.iter().enumerate() {
        let refs: Vec<String> = p.sources.iter().map(|(n, _)| format!("[{n}]")).collect();
        println!(
            "{}{}",
            p.text,
            if refs.is_empty() {
                String::new()
            } else {
                format!(" {}", refs.join(""))
            }
        );
        if i + 1 < draft.paragraphs.len() {
            println!();
        }
    }
    println!("\nSources:");
    for c in &draft.citations {
        // Heading paths start with the document's own title; don't print it twice.
        let heading = c
            .heading_path
            .strip_prefix(c.title.as_str())
            .map(|h| h.trim_start_matches(" > "))
            .unwrap_or(&c.heading_path);
        let heading = if heading.is_empty() {
            String::new()
        } else {
            format!(" › {heading}")
        };
        println!("[{}] {}{} ({})", c.n, c.title, heading, c.path);
        println!("    {}", c.snippet);
    }
    for w in &draft.warnings {
        println!("warning: {w}");
    }
    println!("\ndraft health: {}", draft.health.summary());
    for c in draft.health.checks.iter().filter(|c| c.passed) {
        eprintln!("  ✓ {}: {}", c.name, c.detail);
    }
    if let Some(p) = outcome.sounds_like_you {
        println!(
            "\nsounds like you: {:.0}% (a classifier fitted on your library against other writers and the base model's own drafts)",
            p * 100.0
        );
    }
    let t = &draft.timings;
    eprintln!(
        "\ntrace {} · retrieval {:.0} ms · first token {:.0} ms · {:.1} tokens/s · total {:.1} s",
        draft.trace_id,
        t.retrieval_ms,
        t.first_token_ms,
        t.tokens_per_second,
        t.total_ms / 1e3
    );
    Ok(ExitCode::SUCCESS)
}

/// Evaluate the shared prompt heads of the formats the user drafts with the model and
/// adapter now in use, and keep them on disk, so that the next `twin draft` of each reads only
/// its sources and request ([`twin_core::Twin::keep_prompt_heads`]); says so unless `json`.
/// A failure costs only that head start, so it is a note, not an error.
pub(crate) fn keep_prompt_heads(twin: &twin_core::Twin, json: bool) {
    let kept = twin.keep_prompt_heads();
    if json {
        return;
    }
    match kept {
        Ok((formats, ms)) => {
            let names: Vec<String> = formats
                .iter()
                .map(|f| format!("{}s", f.display_name()))
                .collect();
            println!(
                "prepared the next draft: kept the prompt head of {} ({:.1} s)",
                names.join(", "),
                ms / 1e3
            );
        }
        Err(e) => eprintln!("note: could not keep the prompt head for the next draft: {e}"),
    }
}

/// What a drafting step is doing while its spinner turns.
fn step_activity(step: &str) -> &'static str {
    match step {
        "self_query" => "looking for a platform or date in the topic",
        "expand" => "writing search variants of the topic",
        "retrieve" => "searching your library",
        "outline" => "reading your writing, then planning",
        "draft" | "section" => "writing",
        "critique" => "critiquing the draft",
        "revise" => "revising",
        _ => "working",
    }
}

pub fn traces_cmd(cli: &Cli, cmd: &Option<TracesCommand>, limit: usize) -> Result<ExitCode> {
    let library = open_library(cli)?;
    let store = library.store();
    match cmd {
        Some(TracesCommand::Show { id }) => {
            let trace = store
                .trace(*id)?
                .with_context(|| format!("no trace {id}; see `twin traces`"))?;
            if cli.json {
                print_json(&trace)?;
            } else {
                let d = &trace.detail;
                println!(
                    "trace {} · {} · {} · {}",
                    trace.id, trace.kind, trace.status, trace.format
                );
                println!("topic     {}", trace.topic);
                println!(
                    "model     {}{}",
                    trace.model,
                    trace
                        .adapter
                        .as_deref()
                        .map(|a| format!(" + {a}"))
                        .unwrap_or_default()
                );
                if let Some(ts) = d["templates"].as_array() {
                    let names: Vec<String> = ts
                        .iter()
                        .map(|t| {
                            format!(
                                "{} v{}",
                                t["name"].as_str().unwrap_or("?"),
                                t["version"].as_str().unwrap_or("?")
                            )
                        })
                        .collect();
                    println!("templates {}", names.join(", "));
                }
                println!("queries   {}", d["queries"]);
                println!("filter    {}", d["filter"]);
                println!("timings   {}", d["timings"]);
                if let Some(steps) = d["steps"].as_array() {
                    for s in steps {
                        println!(
                            "step      {:<10} {} prompt tokens ({} reused), {} generated, first token {:.0} ms, {:.1} tok/s",
                            s["name"].as_str().unwrap_or("?"),
                            s["stats"]["prompt_tokens"],
                            s["stats"]["reused_tokens"],
                            s["stats"]["generated_tokens"],
                            s["stats"]["first_token_ms"].as_f64().unwrap_or(0.0),
                            s["stats"]["tokens_per_second"].as_f64().unwrap_or(0.0)
                        );
                    }
                }
                if let Some(cs) = d["citations"].as_array() {
                    for c in cs {
                        println!(
                            "source    [{}] chunk {} · {} · {}",
                            c["n"],
                            c["chunk_id"],
                            c["title"].as_str().unwrap_or(""),
                            c["path"].as_str().unwrap_or("")
                        );
                    }
                }
                println!("\n{}", trace.output);
            }
        }
        None => {
            let traces = store.traces(limit)?;
            if cli.json {
                print_json(&traces)?;
            } else if traces.is_empty() {
                println!("no traces yet: twin draft \"a topic\"");
            } else {
                for t in traces {
                    let first: String = t
                        .output
                        .split_whitespace()
                        .take(10)
                        .collect::<Vec<_>>()
                        .join(" ");
                    println!(
                        "{:>4}  {}  {:<9} {:<10} {:.0} ms  {}  — {first}…",
                        t.id,
                        t.created_at,
                        t.status,
                        t.format,
                        t.detail["timings"]["total_ms"].as_f64().unwrap_or(0.0),
                        t.topic
                    );
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn feedback_cmd(cli: &Cli, trace: i64, file: &std::path::Path) -> Result<ExitCode> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let edit = crate::service(cli)?.record_final(trace, &text)?;
    if cli.json {
        print_json(&edit)?;
    } else {
        match edit {
            Some(e) => println!(
                "kept your edit of draft {trace}: {:.0}% of the words changed; `twin drafts` lists your edits",
                e.changed * 100.0
            ),
            None => println!("draft {trace} was kept as written: nothing to learn from"),
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn drafts_cmd(cli: &Cli, limit: usize) -> Result<ExitCode> {
    let edits = crate::service(cli)?.draft_edits(limit)?;
    if cli.json {
        print_json(&edits)?;
    } else if edits.is_empty() {
        println!("no edited drafts yet: edit a draft in the app, or `twin feedback <trace> --final FILE`");
    } else {
        for e in edits {
            let words = e.final_text.split_whitespace().count();
            println!(
                "{:>4}  trace {:<4} {:<10} {:>3.0}% changed, {words} words  {}",
                e.id,
                e.trace_id,
                e.format,
                e.changed * 100.0,
                e.topic
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn style_cmd(cli: &Cli, args: &StyleArgs) -> Result<ExitCode> {
    let library = open_library(cli)?;
    let store = library.store();
    if args.reset {
        draft::style::set_card(store, None)?;
    } else if let Some(file) = &args.set {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        draft::style::set_card(store, Some(&text))?;
    }
    let card = draft::style::card(store)?;
    if cli.json {
        print_json(&card)?;
    } else {
        println!("{}", card.text);
        println!(
            "\n({}; edit with `twin style --set FILE`, undo with `twin style --reset`)",
            if card.edited {
                "your edited card"
            } else {
                "computed from your writing"
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Args)]
pub struct QualityArgs {
    /// Chains to compare (direct, outlined, full), comma-separated. Default: all three.
    #[arg(long, value_delimiter = ',')]
    pub chains: Vec<draft::Chain>,
    /// Topics, repeatable. Default: three fixed topics the sample writing's author would write
    /// about, none of them among its titles.
    #[arg(long = "topic")]
    pub topics: Vec<String>,
    /// Formats, comma-separated. Default: all four.
    #[arg(long, value_delimiter = ',')]
    pub formats: Vec<Format>,
    /// How the prompts name the author.
    #[arg(long, default_value = "the author")]
    pub author: String,
    /// Random seed.
    #[arg(long, default_value_t = 7)]
    pub seed: u32,
    /// Print every draft with its failed checks.
    #[arg(long)]
    pub show_drafts: bool,
    /// Retrieved passages in each prompt (default: the model's profile).
    #[arg(long)]
    pub context_chunks: Option<usize>,
    /// Alternative search queries the model writes (0 = the topic only; default: the model's
    /// profile).
    #[arg(long)]
    pub expansions: Option<usize>,
    /// Sampling temperature (default: drafting's).
    #[arg(long)]
    pub temperature: Option<f32>,
    #[command(flatten)]
    pub model: ModelArgs,
}

/// `twin bench quality`.
pub fn bench_quality(cli: &Cli, args: &QualityArgs) -> Result<ExitCode> {
    use twin_core::bench::quality::QualitySpec;
    let spec = QualitySpec {
        topics: args.topics.clone(),
        formats: args.formats.clone(),
        chains: args.chains.clone(),
        adapter_scale: 0.0,
        author: args.author.clone(),
        seed: args.seed,
        context_chunks: args.context_chunks,
        expansions: args.expansions,
        temperature: args.temperature,
    };
    let cancel = cancel_on_ctrl_c();
    let json = cli.json;
    let mut done = 0;
    let total = std::cell::Cell::new(0);
    let on_setup = |m: &twin_core::service::DraftingModel, spec: &QualitySpec| {
        total.set(spec.topics.len() * spec.formats.len() * spec.chains.len());
        let adapter = m.adapter.as_ref();
        let adapter = adapter.map_or("none".into(), |a| format!("{} at {}", a.label, a.scale));
        eprintln!(
            "model: {}; adapter: {adapter}; {} drafts",
            m.record.name,
            total.get()
        );
    };
    let (drafts, rows) = crate::service(cli)?.bench_quality(
        &args.model.choice(),
        spec,
        &cancel,
        on_setup,
        &mut |d| {
            done += 1;
            if json {
                return;
            }
            let verdict = if d.health.publishable {
                "publishable"
            } else {
                "not publishable"
            };
            eprintln!(
                "[{done}/{}] {:?} {} \"{}\": {verdict} ({} words, {:.1} s)",
                total.get(),
                d.chain,
                d.format.platform(),
                d.topic,
                d.words,
                d.total_ms / 1e3
            );
            if args.show_drafts {
                let (chain, platform) = (d.chain, d.format.platform());
                println!(
                    "\n──── {chain:?} · {platform} · {} ────\n{}\n",
                    d.topic, d.text
                );
                println!("health: {}\n", d.health.summary());
            }
        },
    )?;
    if json {
        print_json(&serde_json::json!({ "drafts": drafts, "summary": rows }))?;
    } else {
        crate::bench_cmd::print_table(&rows);
    }
    Ok(ExitCode::SUCCESS)
}
