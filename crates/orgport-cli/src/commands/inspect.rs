use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use orgport_core::archive::crypt::Envelope;
use orgport_core::archive::ArchiveReader;

use crate::InspectArgs;

pub fn run(args: InspectArgs) -> Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    let archive = args.input.archive(args.decrypt.identity.as_deref())?;
    // Without an identity, all an encrypted archive shows is its number of recipient stanzas.
    if let (None, Envelope::Age { stanzas }) = (&args.decrypt.identity, archive.envelope()?) {
        writeln!(out, "{}", serde_json::json!({"encrypted": "age", "recipient_stanzas": stanzas}))?;
        eprintln!("the archive is encrypted for {stanzas} recipient(s)\nhint: pass `--identity FILE` to read and check its manifest");
        return Ok(ExitCode::SUCCESS);
    }
    let manifest = ArchiveReader::open(archive.reader()?)?.check_all()?;
    writeln!(out, "{}", serde_json::to_string_pretty(&manifest)?)?;
    Ok(ExitCode::SUCCESS)
}
