//! `orgport-fill`: fills a database's schema with synthetic organisations by following orgport's
//! plan, and prints what it wrote per table.

use std::path::PathBuf;
use std::process::ExitCode;
use std::str::FromStr;

use anyhow::{bail, Context, Result};
use orgport_core::config::Config;
use orgport_testkit::fill::{fill, FillOptions};

const HELP: &str = "\
orgport-fill: fill any schema with synthetic organisations, following orgport's plan:
a root row per organisation, rows in every owned table (parents first, every reference
within the organisation), a pool of rows in the shared tables. One transaction.

Usage: orgport-fill --db URL [OPTIONS]

Options (a value may also be given as --flag=VALUE):
  --db URL              postgres://… or sqlite://PATH (the schema must exist)
  --config FILE         orgport.toml (root, references, exclusions)   [default: none]
  --root TABLE          the tenant root, instead of the configuration's
  --orgs N              organisations to create                        [default: 3]
  --rows-per-table N    rows per owned table and organisation, and
                        rows of each shared table's pool               [default: 3]
  --seed S              seed of keys and coin flips                    [default: 42]
  --first-org K         number of the first organisation in generated
                        text: fill a second database from 4 to hold
                        other organisations                            [default: 1]
  -h, --help            print this help
";

fn main() -> ExitCode {
    orgport_testkit::exit_code(run())
}

fn run() -> Result<()> {
    let mut url = None;
    let mut config_path: Option<PathBuf> = None;
    let mut options = FillOptions::default();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) => (f.to_string(), Some(v.to_string())),
            None => (arg.clone(), None),
        };
        if flag == "-h" || flag == "--help" {
            print!("{HELP}");
            return Ok(());
        }
        let value = match inline.or_else(|| args.next()) {
            Some(v) => v,
            None => bail!("`{flag}` needs a value\n\n{HELP}"),
        };
        match flag.as_str() {
            "--db" => url = Some(value),
            "--config" => config_path = Some(value.into()),
            "--root" => options.root = Some(value),
            "--orgs" => options.orgs = number(&flag, &value)?,
            "--rows-per-table" => options.rows_per_table = number(&flag, &value)?,
            "--seed" => options.seed = number(&flag, &value)?,
            "--first-org" => options.first_org = number(&flag, &value)?,
            _ => bail!("unknown option `{flag}`\n\n{HELP}"),
        }
    }
    let Some(url) = url else { bail!("`--db URL` is required\n\n{HELP}") };
    let config = match &config_path {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    let filled = fill(&url, &config, &options)?;
    print!("{}", filled.summary());
    let rows: usize = filled.tables.values().map(|t| t.rows.len()).sum();
    let keys: Vec<String> = filled.orgs.iter().map(|k| k.display()).collect();
    eprintln!("wrote {rows} rows in {} tables ({} skipped); organisations: {}", filled.tables.len(), filled.skipped.len(), keys.join(", "));
    Ok(())
}

fn number<T: FromStr>(flag: &str, value: &str) -> Result<T> {
    value.parse().ok().with_context(|| format!("`{flag}` takes a number, not `{value}`"))
}
