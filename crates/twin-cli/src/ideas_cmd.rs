//! `twin ideas`: what to write next, from the user's own themes.

use crate::{print_json, service, Cli};
use anyhow::Result;
use std::process::ExitCode;

/// `twin ideas`'s options.
#[derive(clap::Args)]
pub(crate) struct IdeasArgs {
    /// Themes at most.
    #[arg(long, default_value_t = 8)]
    themes: usize,
}

pub(crate) fn ideas_cmd(cli: &Cli, args: &IdeasArgs) -> Result<ExitCode> {
    let twin = service(cli)?;
    let cancel = crate::cancel_on_ctrl_c();
    if !cli.json {
        eprintln!("reading your themes…");
    }
    let ideas = twin.ideas(args.themes, &cancel)?;
    if cli.json {
        print_json(&ideas)?;
        return Ok(ExitCode::SUCCESS);
    }
    println!("Themes in your writing:");
    for t in &ideas.themes {
        println!(
            "{:>3}. {} ({} pieces, latest {}) — {}",
            t.id,
            t.name,
            t.documents,
            t.last_date.as_deref().unwrap_or("undated"),
            t.keywords.join(", ")
        );
    }
    println!("\nIdeas:");
    for idea in &ideas.ideas {
        println!("  • {}", idea.topic);
        println!("    {}", idea.why);
        let from: Vec<String> = idea
            .citations
            .iter()
            .map(|c| format!("[{}] {}", c.n, c.title))
            .collect();
        println!("    from: {}", from.join("; "));
        println!("    twin draft {:?}", idea.topic);
    }
    Ok(ExitCode::SUCCESS)
}
