use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use orgport_core::plan::Plan;
use orgport_core::verify::verify;
use orgport_engines::Access;

use crate::location::open_files_store;
use crate::progress::Bars;
use crate::VerifyArgs;

pub fn run(args: VerifyArgs) -> Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    let mut engine = crate::open_engine(&args.source, Access::ReadOnly)?;
    let config = orgport_engines::config(args.source.config.as_deref())?;
    let archive = args.input.archive()?;
    let root = match config.root {
        Some(_) => None,
        None => Some(super::archive_root(&archive)?),
    };
    let plan = Plan::build(engine.introspect()?, &config, root.as_deref(), engine.capabilities())?;
    let open = super::archive_opener(&archive);
    let report = verify(engine.as_mut(), &plan, &open, &args.orgs, Some(&open_files_store), args.file_jobs.file_jobs.into(), &Bars::new())?;
    if args.json {
        writeln!(out, "{}", serde_json::to_string(&report)?)?;
    } else {
        let rows: u64 = report.tables.values().map(|t| t.equal).sum();
        for d in &report.differences {
            writeln!(out, "difference: {d}")?;
        }
        if report.difference_count > report.differences.len() as u64 {
            writeln!(out, "… {} differences in all", report.difference_count)?;
        }
        for s in &report.skipped {
            writeln!(out, "skipped: {s}")?;
        }
        if report.is_equal() {
            writeln!(out, "verified: {rows} rows in {} tables equal the archive", report.tables.len())?;
            if report.files_equal > 0 {
                writeln!(out, "verified: {} files equal the archive's", report.files_equal)?;
            }
        } else {
            writeln!(out, "NOT equal: {} difference(s)", report.difference_count)?;
        }
    }
    Ok(if report.is_equal() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
