use std::fs::File;
use std::io::BufReader;
use std::process::ExitCode;

use anyhow::{Context, Result};
use orgport_core::archive::ArchiveReader;

use crate::InspectArgs;

pub fn run(args: InspectArgs) -> Result<ExitCode> {
    let file = File::open(&args.input).with_context(|| format!("cannot open archive `{}`", args.input.display()))?;
    let manifest = ArchiveReader::open(BufReader::new(file))?.check_all()?;
    println!("{}", serde_json::to_string_pretty(&manifest)?);
    Ok(ExitCode::SUCCESS)
}
