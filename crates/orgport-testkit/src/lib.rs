//! Test support for orgport: the example SaaS database, and synthetic
//! organisations for any schema.
//!
//! [`example`] builds the database that orgport's tests, benches and docs run
//! against: the schema in `examples/saas/schema.sql` (its orgport
//! configuration is `examples/saas/orgport.toml`), filled with a configurable
//! number of workspaces (the tenants). The same options always give the same
//! file, so a failing test can be reproduced from its options. Main types:
//! [`ExampleOptions`](example::ExampleOptions) (how many workspaces, projects,
//! tasks, users, the seed...) and [`create_example_db`](example::create_example_db);
//! the `orgport-example` binary exposes the same thing on the command line.
//!
//! [`fill`] fills an existing schema, any application's, on PostgreSQL or
//! SQLite, by following orgport's plan ([`fill::fill`], the `orgport-fill`
//! binary), and records every row it wrote ([`fill::Filled`]).
//!
//! ```
//! use orgport_testkit::example::{create_example_db, ExampleOptions};
//!
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("saas.db");
//! let opts = ExampleOptions { orgs: 2, tasks_per_project: 5, ..ExampleOptions::default() };
//! create_example_db(&path, &opts)?;
//!
//! let db = rusqlite::Connection::open(&path)?;
//! let workspaces: i64 = db.query_row("SELECT count(*) FROM workspaces", [], |row| row.get(0))?;
//! assert_eq!(workspaces, 2);
//! # Ok::<(), anyhow::Error>(())
//! ```

pub mod example;
pub mod fill;

/// A command-line tool's exit code: failure reported once, with the whole cause chain.
pub fn exit_code(result: anyhow::Result<()>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
