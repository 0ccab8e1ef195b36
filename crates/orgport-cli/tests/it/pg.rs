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
        _ if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("ORGPORT_PG_URL is not set: CI must start PostgreSQL")
        }
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

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

/// A server of its own for one test (as `scripts/pg.sh` starts the shared one), on a free loopback
/// port, stopped when dropped: for settings the shared server must not get (TLS) or a topology it
/// does not have (a standby).
pub(crate) struct PrivateServer {
    dir: tempfile::TempDir,
    pub(crate) url: String,
}

impl PrivateServer {
    /// A new cluster with `files` (name, content) in its directory and the `-c` settings
    /// `options` gives for that directory.
    pub(crate) fn start(files: &[(&str, &str)], options: impl Fn(&str) -> String) -> PrivateServer {
        let dir = Self::directory(files);
        let data = dir.path().join("data");
        let data = data.to_str().expect("path");
        as_postgres("initdb", &["-D", data, "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8", "--locale=C.UTF-8"]);
        Self::run(dir, &options)
    }

    /// A hot standby streaming from `primary`.
    pub(crate) fn standby_of(primary: &PrivateServer) -> PrivateServer {
        let dir = Self::directory(&[]);
        let data = dir.path().join("data");
        as_postgres("pg_basebackup", &["-D", data.to_str().expect("path"), "-R", "-X", "stream", "-d", &primary.url]);
        Self::run(dir, &|_: &str| "-c hot_standby=on".to_string())
    }

    fn directory(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("temporary directory");
        for (name, content) in files {
            let path = dir.path().join(name);
            std::fs::write(&path, content).expect("a file for the server");
            std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).expect("permissions");
        }
        run("chown", &["-R", "postgres", dir.path().to_str().expect("path")]);
        dir
    }

    fn run(dir: tempfile::TempDir, options: &dyn Fn(&str) -> String) -> PrivateServer {
        let path = dir.path().to_str().expect("path").to_string();
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().expect("address").port();
        let settings =
            format!("-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={path} -c fsync=off {}", options(&path));
        as_postgres("pg_ctl", &["-D", &format!("{path}/data"), "-w", "-l", &format!("{path}/log"), "-o", &settings, "start"]);
        PrivateServer { dir, url: format!("postgres://postgres@127.0.0.1:{port}/postgres") }
    }
}

impl Drop for PrivateServer {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--", &format!("{PG_BIN}/pg_ctl"), "-D", data.to_str().expect("path"), "-m", "immediate", "stop"])
            .output();
    }
}

fn run(program: &str, args: &[&str]) {
    let out = Command::new(program).args(args).output().unwrap_or_else(|e| panic!("running {program}: {e}"));
    assert!(out.status.success(), "{program} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// One of the server's tools, as the `postgres` user that owns the cluster.
fn as_postgres(tool: &str, args: &[&str]) {
    let tool = format!("{PG_BIN}/{tool}");
    let mut all = vec!["-u", "postgres", "--", tool.as_str()];
    all.extend(args);
    run("runuser", &all);
}
