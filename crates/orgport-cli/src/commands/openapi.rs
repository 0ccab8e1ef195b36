use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;

/// The document from the server's code, offline: for API clients and docs generated at build time.
pub fn run() -> Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    out.write_all(orgport_server::openapi().as_bytes())?;
    out.write_all(b"\n")?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
