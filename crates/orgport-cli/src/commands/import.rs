use std::process::ExitCode;

use anyhow::Result;
use orgport_core::import::{import, ImportOptions};
use orgport_core::plan::Plan;
use orgport_sqlite::Access;

use crate::progress::Bars;
use crate::{engines, ImportArgs};

pub fn run(args: ImportArgs) -> Result<ExitCode> {
    let mut engine = engines::open(&args.source, Access::ReadWrite)?;
    let config = engines::config(args.source.config.as_deref())?;
    let archive = args.input.archive()?;
    let root = match config.root {
        Some(_) => None,
        None => Some(super::archive_root(&archive)?),
    };
    let plan = Plan::build(engine.introspect()?, &config, root.as_deref(), engine.capabilities())?;
    let open = super::archive_opener(&archive);
    let report = import(engine.as_mut(), &plan, &open, &ImportOptions { dry_run: args.dry_run }, &Bars::new())?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
        return Ok(ExitCode::SUCCESS);
    }
    let verb = if report.dry_run { "would import" } else { "imported" };
    for org in &report.orgs {
        println!("{verb} organisation {} as {}", org.source, org.target);
    }
    for (table, counts) in &report.tables {
        println!("  {table:30} created {:>8}  matched {:>8}", counts.created, counts.matched);
    }
    for r in &report.renamed {
        match (&r.from, &r.to) {
            (Some(from), Some(to)) => println!("  renamed {}.{}: {from} → {to}", r.table, r.column),
            _ => println!("  regenerated {}.{} (sensitive)", r.table, r.column),
        }
    }
    for c in &report.cut {
        println!("  {} row(s) of `{}`: ({}) {} `{}`: {}", c.rows, c.table, c.columns.join(", "), c.reason, c.to, c.action);
    }
    if report.dry_run {
        println!("dry run: nothing was written");
    }
    Ok(ExitCode::SUCCESS)
}
