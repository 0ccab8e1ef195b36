use std::process::ExitCode;

use anyhow::Result;
use orgport_core::archive::crypt::Identities;
use orgport_engines::Access;
use orgport_server::{Encryption, Server, Settings, Tokens};

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
        eprintln!("warning: no tokens and no `[jwt]`: every request but `/healthz` gets 401\nhint: pass `--tokens-file FILE` (see `orgport serve --help`)");
    }
    if args.encrypt.allow_plaintext_secrets && args.encrypt.encrypt_to.is_empty() && args.encrypt.encrypt_to_file.is_empty() {
        eprintln!("warning: `--allow-plaintext-secrets`: exports asking for sensitive groups (`with=`) leave unencrypted");
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
        reply_within: std::time::Duration::from_secs(args.reply_within),
        open_store: &crate::location::open_files_store,
        encryption: Encryption {
            recipients: args.encrypt.recipients()?,
            identities: args.decrypt.identity.as_deref().map(Identities::from_file).transpose()?,
            allow_plaintext_secrets: args.encrypt.allow_plaintext_secrets,
        },
    };
    let mut server = Server::bind(args.listen, settings)?;
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        server = server.with_tls(cert, key)?;
    }
    eprintln!("listening on {}://{}", server.scheme(), server.local_addr());
    server.run()?;
    Ok(ExitCode::SUCCESS)
}
