use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use orgport_core::import::{import, FilesImport, ImportOptions};
use orgport_core::plan::Plan;
use orgport_engines::Access;

use crate::location::open_files_store;
use crate::progress::Bars;
use crate::ImportArgs;

pub fn run(args: ImportArgs) -> Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    let mut engine = crate::open_engine(&args.source, Access::ReadWrite)?;
    let config = orgport_engines::config(args.source.config.as_deref())?;
    let Some(input) = &args.input else { return cleanup(engine.as_mut(), &config, args.json, &mut out) };
    let archive = input.archive(args.decrypt.identity.as_deref())?;
    let root = match config.root {
        Some(_) => None,
        None => Some(super::archive_root(&archive)?),
    };
    let plan = Plan::build(engine.introspect()?, &config, root.as_deref(), engine.capabilities())?;
    let open = super::archive_opener(&archive);
    let files = FilesImport { open: &open_files_store, jobs: args.file_jobs.file_jobs.into() };
    let options = ImportOptions { dry_run: args.dry_run, files: Some(files) };
    let report = import(engine.as_mut(), &plan, &open, &options, &Bars::new())?;
    if args.json {
        writeln!(out, "{}", serde_json::to_string(&report)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    let verb = if report.dry_run { "would import" } else { "imported" };
    for org in &report.orgs {
        writeln!(out, "{verb} organisation {} as {}", org.source, org.target)?;
    }
    for (table, counts) in &report.tables {
        writeln!(out, "  {table:30} created {:>8}  matched {:>8}", counts.created, counts.matched)?;
    }
    for files in &report.files {
        writeln!(out, "  files of `{}`: {} ({} bytes) → {}", files.name, files.files, files.bytes, files.store)?;
    }
    for r in &report.renamed {
        match (&r.from, &r.to) {
            (Some(from), Some(to)) => writeln!(out, "  renamed {}.{}: {from} → {to}", r.table, r.column)?,
            _ => writeln!(out, "  regenerated {}.{} (sensitive)", r.table, r.column)?,
        }
    }
    for c in &report.cut {
        writeln!(out, "  {} row(s) of `{}`: ({}) {} `{}`: {}", c.rows, c.table, c.columns.join(", "), c.reason, c.to, c.action)?;
    }
    if report.dry_run {
        writeln!(out, "dry run: nothing was written")?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `import --cleanup`: the objects of killed imports, removed.
fn cleanup(
    engine: &mut dyn orgport_core::engine::Engine,
    config: &orgport_core::config::Config,
    json: bool,
    out: &mut impl Write,
) -> Result<ExitCode> {
    if config.root.is_none() {
        anyhow::bail!("--cleanup needs the root table: set `root` in orgport.toml");
    }
    let plan = Plan::build(engine.introspect()?, config, None, engine.capabilities())?;
    let report = orgport_core::journal::cleanup(engine, &plan, &open_files_store)?;
    if json {
        writeln!(out, "{}", serde_json::to_string(&report)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    for object in &report.removed {
        writeln!(out, "removed {object}")?;
    }
    writeln!(
        out,
        "{} note(s) of imports found: {} had committed, {} object(s) of interrupted imports removed, \
         {} leftover(s) of their killed writes (temporary files, unfinished uploads)",
        report.journals,
        report.committed,
        report.removed.len(),
        report.leftovers
    )?;
    Ok(ExitCode::SUCCESS)
}
