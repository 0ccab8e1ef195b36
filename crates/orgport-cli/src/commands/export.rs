use std::io::{BufReader, BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use orgport_core::archive::crypt::{Recipients, Sink};
use orgport_core::archive::Manifest;
use orgport_core::engine::Engine;
use orgport_core::export::{export, ExportOptions};
use orgport_core::files::{FilesExport, FilesMode as CoreFilesMode};
use orgport_core::plan::Plan;
use orgport_core::store::ObjectStore;
use orgport_engines::Access;
use orgport_objects::ObjectUrl;

use crate::location::{open_files_store, Location};
use crate::progress::Bars;
use crate::{ArchiveForm, ExportArgs, FilesMode};

pub fn run(args: ExportArgs) -> Result<ExitCode> {
    let recipients = args.encrypt.recipients()?;
    if !args.with.is_empty() && recipients.is_none() {
        let groups = args.with.join(",");
        if !args.encrypt.allow_plaintext_secrets {
            bail!(
                "`--with {groups}` puts sensitive values in the archive, and it is not encrypted\nhint: pass `--encrypt-to RECIPIENT` (an age public key), or `--allow-plaintext-secrets` to write them in clear"
            );
        }
        eprintln!("warning: the archive holds the sensitive groups `{groups}` unencrypted (`--allow-plaintext-secrets`): keep it like the passwords it holds");
    }
    if let (Some(_), Some(FilesMode::Copy), Some(to)) = (&recipients, args.files, &args.files_to) {
        eprintln!("warning: `--encrypt-to` encrypts the archive only: the files copied to `{to}` (`--files copy`) are not encrypted");
    }
    let manifest = match &args.out {
        Location::File(path) => to_file(&args, path, recipients.as_ref())?,
        Location::Object(url) => to_object(&args, url, recipients.as_ref())?,
    };

    let rows: u64 = manifest.tables.iter().map(|t| t.rows).sum();
    eprintln!(
        "exported {} organisation(s) from `{}`: {rows} rows in {} tables, {} bytes → {}",
        manifest.orgs.len(),
        manifest.root_table,
        manifest.tables.len(),
        manifest.data.compressed_bytes,
        args.out
    );
    for set in &manifest.files {
        let bytes: u64 = set.files.iter().map(|f| f.size).sum();
        let place = set.copied_to.as_deref().unwrap_or("the archive");
        eprintln!("files of `{}`: {} ({bytes} bytes) → {place}", set.name, set.files.len());
    }
    let withheld: Vec<String> =
        manifest.tables.iter().flat_map(|t| t.withheld.iter().map(move |(c, g)| format!("{}.{c} ({g})", t.name))).collect();
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
    if let Some(r) = &recipients {
        eprintln!("encrypted with age for {} recipient(s)", r.len());
    }
    Ok(ExitCode::SUCCESS)
}

/// Written beside the target and renamed into place only when complete, so a failed export
/// never leaves a file that looks like an archive.
fn to_file(args: &ExportArgs, out: &Path, recipients: Option<&Recipients>) -> Result<Manifest> {
    if out.exists() && !args.force {
        bail!("`{}` already exists\nhint: pass `--force` to replace it", out.display());
    }
    if let Ok(source) = orgport_sqlite::url_path(&args.source.db) {
        let same = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        };
        if same(&source, out) {
            bail!("`--out {}` is the source database itself; the export would replace it", out.display());
        }
    }
    let mut engine = crate::open_engine(&args.source, Access::ReadOnly)?;
    let plan = super::plan_for(engine.as_mut(), &args.source, args.root.as_deref())?;
    let dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut partial = tempfile::Builder::new()
        .prefix(".orgport-partial-")
        .tempfile_in(&dir)
        .with_context(|| format!("cannot write in `{}`", dir.display()))?;
    let files_to = files_to(args)?;
    let manifest = {
        let mut sink = Sink::new(BufWriter::new(partial.as_file_mut()), recipients)?;
        let manifest = write(args, engine.as_mut(), &plan, files_to.as_deref(), Some(&dir), &mut sink)?;
        sink.finish()?.into_inner().map_err(|e| e.into_error()).context("cannot write the archive")?;
        manifest
    };
    partial.as_file().sync_all().context("cannot flush the archive to disk")?;
    partial.persist(out).with_context(|| format!("cannot move the archive to `{}`", out.display()))?;
    Ok(manifest)
}

/// Streamed to the store, which makes the object appear only when the writer is finished:
/// an export that fails drops the writer, and the upload is abandoned.
fn to_object(args: &ExportArgs, url: &ObjectUrl, recipients: Option<&Recipients>) -> Result<Manifest> {
    let store = Location::open_store(url)?;
    if !args.force && store.size(url.key())?.is_some() {
        bail!("`{url}` already exists\nhint: pass `--force` to replace it");
    }
    let mut engine = crate::open_engine(&args.source, Access::ReadOnly)?;
    let plan = super::plan_for(engine.as_mut(), &args.source, args.root.as_deref())?;
    let files_to = files_to(args)?;
    // Opened before the export so that a wrong bucket or credentials fail before the long part.
    let mut out = Sink::new(BufWriter::with_capacity(1 << 16, store.writer(url.key())?), recipients)?;
    let manifest = write(args, engine.as_mut(), &plan, files_to.as_deref(), None, &mut out)?;
    out.finish()?.into_inner().map_err(|e| e.into_error())?.finish()?;
    Ok(manifest)
}

/// The export in the form asked for: the JSON form is converted from a binary archive in a
/// temporary file in `spool_dir`.
fn write(
    args: &ExportArgs,
    engine: &mut dyn Engine,
    plan: &Plan,
    files_to: Option<&dyn ObjectStore>,
    spool_dir: Option<&Path>,
    out: &mut dyn Write,
) -> Result<Manifest> {
    if !args.all && !args.exclude.is_empty() {
        bail!("`--exclude` goes with `--all`");
    }
    let orgs = match args.all {
        true => orgport_core::orgs::all_orgs_except(engine, plan, &args.exclude)?,
        false => args.orgs.clone(),
    };
    let options = options(args, orgs, plan, files_to, spool_dir);
    let json = match args.format {
        Some(form) => form == ArchiveForm::Json,
        None => args.out.to_string().ends_with(".json"),
    };
    if !json {
        return Ok(export(engine, plan, &options, out, &Bars::new())?);
    }
    let mut binary = match spool_dir {
        Some(dir) => tempfile::tempfile_in(dir),
        None => tempfile::tempfile(),
    }
    .context("cannot create a temporary file for the binary archive")?;
    {
        let mut file = BufWriter::new(&mut binary);
        export(engine, plan, &options, &mut file, &Bars::new())?;
        file.flush()?;
    }
    binary.seek(SeekFrom::Start(0))?;
    Ok(orgport_core::archive::json::to_json(BufReader::with_capacity(1 << 16, binary), out)?)
}

/// Where `--files copy` puts the files.
fn files_to(args: &ExportArgs) -> Result<Option<Box<dyn ObjectStore>>> {
    match (&args.files_to, args.files) {
        (Some(url), Some(FilesMode::Copy)) => {
            // A new directory is made, as a bucket's new prefix would be; the archive records
            // it by its absolute path, so that an import elsewhere finds it.
            if let Some(dir) = url.strip_prefix("file://") {
                std::fs::create_dir_all(dir).with_context(|| format!("cannot create `{dir}`"))?;
                let absolute = std::fs::canonicalize(dir).with_context(|| format!("cannot find `{dir}`"))?;
                return Ok(Some(open_files_store(&format!("file://{}", absolute.display()))?));
            }
            Ok(Some(open_files_store(url)?))
        }
        (Some(_), _) => bail!("`--files-to` goes with `--files copy`"),
        (None, _) => Ok(None),
    }
}

/// Tables read ahead wait in `spool_dir` (the system's temporary directory when None).
fn options<'a>(
    args: &ExportArgs,
    orgs: Vec<String>,
    plan: &Plan,
    files_to: Option<&'a dyn ObjectStore>,
    spool_dir: Option<&'a Path>,
) -> ExportOptions<'a> {
    let mode = match (args.files, files_to) {
        (Some(FilesMode::None), _) => None,
        (_, Some(to)) => Some(CoreFilesMode::Copy(to)),
        (Some(FilesMode::Embed), None) => Some(CoreFilesMode::Embed),
        // Nothing declared, nothing to take.
        _ if plan.files.is_empty() => None,
        _ => Some(CoreFilesMode::Embed),
    };
    ExportOptions {
        orgs,
        with_groups: args.with.iter().cloned().collect(),
        spool_dir,
        jobs: args.jobs.into(),
        files: mode.map(|mode| FilesExport { mode, open: &open_files_store, jobs: args.file_jobs.file_jobs.into() }),
    }
}
