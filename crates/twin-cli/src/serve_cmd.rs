//! `twin serve`: the local OpenAI-compatible API in the foreground until Ctrl-C.

use crate::{provision, service, Cli};
use anyhow::Result;
use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

/// `twin serve`'s options.
#[derive(clap::Args)]
pub(crate) struct ServeArgs {
    /// Port on 127.0.0.1 (0: one the system picks). Nothing listens on other addresses.
    #[arg(long, default_value_t = 0)]
    port: u16,
}

/// Serve until Ctrl-C: the address and token are printed first (one JSON object with `--json`).
pub(crate) fn serve_cmd(cli: &Cli, args: &ServeArgs) -> Result<ExitCode> {
    let twin = Arc::new(service(cli)?);
    // A fresh data folder gets the default models, so the API answers at once.
    provision(cli, &twin)?;
    let server = twin_api::Server::start(Arc::clone(&twin), args.port)?;
    let token_file = twin.data_dir().join(twin_api::token::TOKEN_FILE);
    let mut out = std::io::stdout().lock();
    if cli.json {
        let started = serde_json::json!({
            "base_url": server.base_url(),
            "port": server.addr().port(),
            "token": server.token(),
            "token_file": token_file,
        });
        writeln!(out, "{started}")?;
    } else {
        writeln!(out, "Twin's API is listening at {}", server.base_url())?;
        writeln!(out, "token: {}", server.token())?;
        writeln!(
            out,
            "(kept in {}; clients send it as `Authorization: Bearer <token>`)",
            token_file.display()
        )?;
        writeln!(
            out,
            "models: twin (your voice), twin+library (grounded in your writing), twin-base"
        )?;
        writeln!(out, "Ctrl-C stops it.")?;
    }
    out.flush()?;
    drop(out);
    let (stop, stopped) = std::sync::mpsc::channel();
    ctrlc::set_handler(move || {
        let _ = stop.send(());
    })?;
    let _ = stopped.recv();
    server.stop();
    Ok(ExitCode::SUCCESS)
}
