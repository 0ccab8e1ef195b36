use std::io::BufWriter;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use orgport_core::export::{export, ExportOptions};
use orgport_sqlite::Access;

use crate::progress::Bars;
use crate::{engines, ExportArgs};

pub fn run(args: ExportArgs) -> Result<ExitCode> {
    if args.out.exists() && !args.force {
        bail!("`{}` already exists\nhint: pass `--force` to replace it", args.out.display());
    }
    if let Ok(source) = orgport_sqlite::url_path(&args.source.db) {
        let same = |a: &std::path::Path, b: &std::path::Path| match (a.canonicalize(), b.canonicalize()) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        };
        if same(&source, &args.out) {
            bail!("`--out {}` is the source database itself; the export would replace it", args.out.display());
        }
    }
    let mut engine = engines::open(&args.source, Access::ReadOnly)?;
    let plan = super::plan_for(engine.as_mut(), &args.source, args.root.as_deref())?;
    let dir = match args.out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    // Written beside the target and renamed into place only when complete, so a failed export
    // never leaves a file that looks like an archive.
    let mut partial = tempfile::Builder::new()
        .prefix(".orgport-partial-")
        .tempfile_in(&dir)
        .with_context(|| format!("cannot write in `{}`", dir.display()))?;
    let options = ExportOptions { orgs: args.orgs.clone(), with_groups: args.with.iter().cloned().collect(), spool_dir: Some(&dir), jobs: args.jobs.into() };
    let manifest = {
        let mut out = BufWriter::new(partial.as_file_mut());
        export(engine.as_mut(), &plan, &options, &mut out, &Bars::new())?
    };
    partial.as_file().sync_all().context("cannot flush the archive to disk")?;
    partial.persist(&args.out).with_context(|| format!("cannot move the archive to `{}`", args.out.display()))?;

    let rows: u64 = manifest.tables.iter().map(|t| t.rows).sum();
    eprintln!(
        "exported {} organisation(s) from `{}`: {rows} rows in {} tables, {} bytes → {}",
        manifest.orgs.len(),
        manifest.root_table,
        manifest.tables.len(),
        manifest.data.compressed_bytes,
        args.out.display()
    );
    let withheld: Vec<String> = manifest
        .tables
        .iter()
        .flat_map(|t| t.withheld.iter().map(move |(c, g)| format!("{}.{c} ({g})", t.name)))
        .collect();
    if !withheld.is_empty() {
        eprintln!("withheld as sensitive: {}", withheld.join(", "));
    }
    for cut in &manifest.cut {
        eprintln!(
            "note: {} row(s) of `{}` where ({}) {} `{}`: {}",
            cut.rows,
            cut.table,
            cut.columns.join(", "),
            cut.reason,
            cut.to,
            cut.action
        );
    }
    Ok(ExitCode::SUCCESS)
}
