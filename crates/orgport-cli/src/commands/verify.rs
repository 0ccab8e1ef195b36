use std::process::ExitCode;

use anyhow::Result;
use orgport_core::plan::Plan;
use orgport_core::verify::verify;
use orgport_sqlite::Access;

use crate::progress::Bars;
use crate::{engines, VerifyArgs};

pub fn run(args: VerifyArgs) -> Result<ExitCode> {
    let mut engine = engines::open(&args.source, Access::ReadOnly)?;
    let config = engines::config(args.source.config.as_deref())?;
    let archive = args.input.archive()?;
    let root = match config.root {
        Some(_) => None,
        None => Some(super::archive_root(&archive)?),
    };
    let plan = Plan::build(engine.introspect()?, &config, root.as_deref(), engine.capabilities())?;
    let open = super::archive_opener(&archive);
    let report = verify(engine.as_mut(), &plan, &open, &args.orgs, &Bars::new())?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        let rows: u64 = report.tables.values().map(|t| t.equal).sum();
        for d in &report.differences {
            println!("difference: {d}");
        }
        if report.difference_count > report.differences.len() as u64 {
            println!("… {} differences in all", report.difference_count);
        }
        for s in &report.skipped {
            println!("skipped: {s}");
        }
        if report.is_equal() {
            println!("verified: {rows} rows in {} tables equal the archive", report.tables.len());
        } else {
            println!("NOT equal: {} difference(s)", report.difference_count);
        }
    }
    Ok(if report.is_equal() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
