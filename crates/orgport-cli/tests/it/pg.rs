//! A real PostgreSQL server for the tests that need one: started by `scripts/test.sh`, its URL in
//! `ORGPORT_PG_URL`. Outside CI a missing server skips those tests with a notice; in CI it fails
//! them. Databases are created and loaded with `psql`.

use std::path::PathBuf;
use std::process::Command;

use crate::util::repo_root;

/// The server's URL, or None (with a notice) outside CI.
pub(crate) fn server() -> Option<String> {
    match std::env::var("ORGPORT_PG_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("CI").as_deref() == Ok("true") => panic!("ORGPORT_PG_URL is not set: CI must start PostgreSQL"),
        _ => {
            eprintln!("notice: ORGPORT_PG_URL is not set; PostgreSQL tests skipped (run `bash scripts/test.sh`)");
            None
        }
    }
}

pub(crate) fn psql(url: &str, args: &[&str]) -> String {
    let out = Command::new("psql").arg(url).args(["-X", "-q", "-tA", "-v", "ON_ERROR_STOP=1"]).args(args).output().expect("running psql");
    assert!(out.status.success(), "psql {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A new, empty database on the server; its URL.
pub(crate) fn fresh_db(server: &str, name: &str) -> String {
    let name = format!("{name}_{}", std::process::id());
    psql(server, &["-c", &format!("DROP DATABASE IF EXISTS {name}"), "-c", &format!("CREATE DATABASE {name}")]);
    let base = server.rsplit_once('/').map(|(b, _)| b).expect("a URL with a database");
    format!("{base}/{name}")
}

pub(crate) fn realworld(file: &str) -> PathBuf {
    repo_root().join("../shared/realworld").join(file)
}
