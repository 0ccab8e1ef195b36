use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use orgport_core::archive::ArchiveReader;

use crate::InspectArgs;

pub fn run(args: InspectArgs) -> Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    let manifest = ArchiveReader::open(args.input.archive()?.reader()?)?.check_all()?;
    writeln!(out, "{}", serde_json::to_string_pretty(&manifest)?)?;
    Ok(ExitCode::SUCCESS)
}
