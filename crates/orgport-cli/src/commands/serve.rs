use std::process::ExitCode;

use anyhow::Result;
use orgport_engines::Access;
use orgport_server::{Server, Settings, Tokens};

use crate::ServeArgs;

pub fn run(args: ServeArgs) -> Result<ExitCode> {
    let config = orgport_engines::config(args.source.config.as_deref())?;
    // A wrong URL or an unreadable database fails now, not at the first request.
    drop(crate::open_engine(&args.source, Access::ReadOnly)?);
    let tokens = match &args.tokens_file {
        Some(path) => Tokens::load(path)?,
        None => Tokens::default(),
    };
    if tokens.is_empty() {
        eprintln!(
            "warning: no tokens: every request but `/healthz` gets 401\nhint: pass `--tokens-file FILE` (see `orgport serve --help`)"
        );
    }
    let settings = Settings {
        db: args.source.db,
        schemas: args.source.schemas,
        config,
        root: args.root,
        tokens,
        max_body: args.max_body,
        max_jobs: args.max_jobs.into(),
        file_jobs: args.file_jobs.file_jobs.into(),
        open_store: &crate::location::open_files_store,
    };
    let server = Server::bind(args.listen, settings)?;
    eprintln!("listening on http://{}", server.local_addr());
    server.run()?;
    Ok(ExitCode::SUCCESS)
}
