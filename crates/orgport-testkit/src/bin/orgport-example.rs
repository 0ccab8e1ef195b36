//! `orgport-example`: writes the example SaaS database to a new SQLite file
//! and prints the number of rows per table to stderr.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::str::FromStr;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use orgport_testkit::example::{create_example_db, ExampleOptions};
use rusqlite::{Connection, OpenFlags};

const HELP: &str = "\
orgport-example: write the example SaaS database (examples/saas/schema.sql)
filled with deterministic data. The same flags always give the same file.

Usage: orgport-example --out PATH [OPTIONS]

Options (a value may also be given as --flag=VALUE):
  --out PATH          SQLite file to create; it must not exist
  --orgs N            number of workspaces (tenants)                 [default: 3]
  --first-org ID      id of the first workspace, the others follow   [default: 1]
  --seed S            seed of every random choice                    [default: 42]
  --projects N        projects per workspace                         [default: 5]
  --tasks N           tasks per project                              [default: 20]
  --users N           size of the user pool shared by workspaces     [default: 12]
  --chain N           add a chain of N tasks, each the parent of the
                      next, to the first project of the first
                      workspace; 0 = none                            [default: 0]
  --slug-prefix P     workspace slugs are P followed by the id       [default: ws-]
  -h, --help          print this help
";

fn main() -> ExitCode {
    orgport_testkit::exit_code(run())
}

fn run() -> Result<()> {
    let Some((out, opts)) = parse_args(std::env::args().skip(1))? else {
        print!("{HELP}");
        return Ok(());
    };
    let started = Instant::now();
    create_example_db(&out, &opts)?;
    let elapsed = started.elapsed();
    let counts = row_counts(&out)?;
    let total: i64 = counts.iter().map(|(_, rows)| rows).sum();
    let per_table: Vec<String> = counts.iter().map(|(table, rows)| format!("{table}={rows}")).collect();
    eprintln!("wrote {} in {:.2}s, {total} rows: {}", out.display(), elapsed.as_secs_f64(), per_table.join(" "));
    Ok(())
}

/// Returns the output path and options, or `None` when help was asked for.
fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Option<(PathBuf, ExampleOptions)>> {
    let mut out = None;
    let mut opts = ExampleOptions::default();
    while let Some(arg) = args.next() {
        if arg == "-h" || arg == "--help" {
            return Ok(None);
        }
        let (flag, inline_value) = match arg.split_once('=') {
            Some((flag, value)) => (flag.to_owned(), Some(value.to_owned())),
            None => (arg, None),
        };
        let value = match inline_value.or_else(|| args.next()) {
            Some(value) => value,
            None => bail!("`{flag}` needs a value\nhint: see `orgport-example --help`"),
        };
        match flag.as_str() {
            "--out" => out = Some(PathBuf::from(value)),
            "--orgs" => opts.orgs = parse(&flag, &value)?,
            "--first-org" => opts.first_org = parse(&flag, &value)?,
            "--seed" => opts.seed = parse(&flag, &value)?,
            "--projects" => opts.projects_per_org = parse(&flag, &value)?,
            "--tasks" => opts.tasks_per_project = parse(&flag, &value)?,
            "--users" => opts.users = parse(&flag, &value)?,
            "--chain" => opts.chain_depth = parse(&flag, &value)?,
            "--slug-prefix" => opts.slug_prefix = value,
            _ => bail!("unknown argument `{flag}`\nhint: see `orgport-example --help`"),
        }
    }
    let out = out.context("`--out PATH` is required\nhint: see `orgport-example --help`")?;
    Ok(Some((out, opts)))
}

fn parse<T: FromStr>(flag: &str, value: &str) -> Result<T>
where
    T::Err: std::error::Error + Send + Sync + 'static,
{
    value.parse().with_context(|| format!("invalid value `{value}` for `{flag}`"))
}

/// Rows per table, by table name, SQLite's internal tables left out.
fn row_counts(path: &Path) -> Result<Vec<(String, i64)>> {
    let conn =
        Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).with_context(|| format!("reopening `{}`", path.display()))?;
    let mut tables = conn
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
        .context("listing tables")?;
    let names = tables
        .query_map([], |row| row.get::<_, String>(0))
        .context("listing tables")?
        .collect::<rusqlite::Result<Vec<String>>>()
        .context("listing tables")?;
    names
        .into_iter()
        .map(|name| {
            let sql = format!("SELECT count(*) FROM \"{}\"", name.replace('"', "\"\""));
            let rows = conn.query_row(&sql, [], |row| row.get(0)).with_context(|| format!("counting rows of `{name}`"))?;
            Ok((name, rows))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> impl Iterator<Item = String> + '_ {
        line.split_whitespace().map(str::to_owned)
    }

    #[test]
    fn parses_flags_with_separate_and_inline_values() {
        let (out, opts) = parse_args(args("--out a.db --orgs=2 --first-org -7 --chain 4 --slug-prefix=x-")).unwrap().unwrap();
        assert_eq!(out, PathBuf::from("a.db"));
        let expected = ExampleOptions { orgs: 2, first_org: -7, chain_depth: 4, slug_prefix: "x-".to_owned(), ..ExampleOptions::default() };
        assert_eq!(opts, expected);
    }

    #[test]
    fn help_wins_over_everything_else() {
        assert!(parse_args(args("--orgs 2 --help")).unwrap().is_none());
    }

    #[test]
    fn reports_bad_arguments() {
        for (line, message) in [
            ("--orgs 2", "`--out PATH` is required"),
            ("--out a.db --orgs", "`--orgs` needs a value"),
            ("--out a.db --orgs two", "invalid value `two` for `--orgs`"),
            ("--out a.db --colour red", "unknown argument `--colour`"),
        ] {
            let error = parse_args(args(line)).unwrap_err();
            assert!(error.to_string().contains(message), "{line}: {error:#}");
        }
    }
}
