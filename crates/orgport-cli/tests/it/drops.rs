//! The database connection dropped and the disk full (issue 7, "Crashes and faults"): the
//! server terminates orgport's backend (`pg_terminate_backend`, from a second session) in the
//! middle of an export and of an import; the archive's disk, and the target database's, fill
//! up. Each ends in a clear error, with nothing half-written: no archive at `--out` (nor a
//! temporary file beside it), and the target as it was.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::pg::{fresh_db, psql, server};
use crate::util::*;

/// A database whose organisation 1 has enough rows that an export or import runs for a while.
fn big_org(server: &str, name: &str) -> String {
    let db = fresh_db(server, name);
    psql(
        &db,
        &[
            "-c",
            "CREATE TABLE orgs (id integer PRIMARY KEY, name text NOT NULL);
                 CREATE TABLE items (id bigserial PRIMARY KEY, org_id integer NOT NULL REFERENCES orgs(id), label text NOT NULL);
                 INSERT INTO orgs VALUES (1, 'one'), (2, 'two');
                 INSERT INTO items (org_id, label) SELECT 1 + x % 2, repeat(md5(x::text), 4) FROM generate_series(1, 600000) x;",
        ],
    );
    db
}

const APP: &str = "orgport-under-test";

/// Runs orgport on `db` (tagged with an application name), terminates its backend as soon as
/// it is seen running a statement that matches `running` (SQL `LIKE`), and returns its output.
fn terminated_midway(work: &Work, args: &[&str], db: &str, running: &str) -> Out {
    let tagged = format!("{db}?application_name={APP}");
    let args: Vec<String> = args.iter().map(|a| if *a == db { tagged.clone() } else { a.to_string() }).collect();
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("orgport"))
        .current_dir(work.path("."))
        .args(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting orgport");
    let find = format!(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE application_name = '{APP}' AND state = 'active' AND query LIKE '{running}'"
    );
    while psql(db, &["-c", &find]) == "0" {
        if let Some(status) = child.try_wait().expect("orgport's state") {
            panic!("orgport ended ({status}) before a statement like `{running}` was seen");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    child.wait_with_output().expect("waiting for orgport").into()
}

/// Failed, saying the connection was lost: the server's "terminating connection", or the socket
/// closed or reset before that message arrived, depending on what orgport was doing.
#[track_caller]
fn dropped(out: &Out) {
    assert_ne!(out.code, 0, "orgport succeeded: {}", out.stdout);
    let said = ["terminating connection", "connection closed", "error communicating with the server"];
    assert!(said.iter().any(|s| out.stderr.contains(s)), "the error does not say the connection was lost:\n{}", out.stderr);
}

/// Nothing at `out`, and no temporary file beside it.
#[track_caller]
fn no_archive(out: &Path) {
    assert!(!out.exists(), "an archive was left at {}", out.display());
    let dir = out.parent().expect("a directory");
    let left: Vec<String> = dir_listing(dir).into_iter().filter(|f| f.contains("orgport") && !f.ends_with(".toml")).collect();
    assert!(left.is_empty(), "files left beside the archive: {left:?}");
}

#[test]
fn a_connection_dropped_mid_export_fails_clearly_and_leaves_no_archive() {
    let Some(server) = server() else { return };
    let work = Work::new();
    let db = big_org(&server, "drop_export");
    let config = work.config("orgport.toml", "root = \"orgs\"\n");
    let out_dir = work.path("out");
    std::fs::create_dir_all(&out_dir).expect("a directory");
    let archive = out_dir.join("org.orgport");
    let (config, archive_arg) = (config.display().to_string(), archive.display().to_string());
    let out = terminated_midway(&work, &["export", "--db", &db, "--config", &config, "--org", "1", "--out", &archive_arg], &db, "%");
    dropped(&out);
    no_archive(&archive);
}

#[test]
fn a_connection_dropped_mid_import_fails_clearly_and_leaves_the_target_as_it_was() {
    let Some(server) = server() else { return };
    let work = Work::new();
    let source = big_org(&server, "drop_source");
    let config = work.config("orgport.toml", "root = \"orgs\"\n").display().to_string();
    let archive = work.path("org.orgport").display().to_string();
    work.run(&["export", "--db", &source, "--config", &config, "--org", "1", "--out", &archive]).ok();
    let target = fresh_db(&server, "drop_target");
    psql(
        &target,
        &[
            "-c",
            "CREATE TABLE orgs (id integer PRIMARY KEY, name text NOT NULL);
                            CREATE TABLE items (id bigserial PRIMARY KEY, org_id integer NOT NULL REFERENCES orgs(id), label text NOT NULL);
                            INSERT INTO orgs VALUES (7, 'seven'); INSERT INTO items (org_id, label) VALUES (7, 'a'), (7, 'b');",
        ],
    );
    let before = crate::crash::pg_rows(&target);
    // While the rows are being written.
    let out = terminated_midway(&work, &["import", "--db", &target, "--config", &config, "--in", &archive], &target, "COPY%");
    dropped(&out);
    assert!(crate::crash::pg_rows(&target) == before, "the target changed");
}

/// A tmpfs of `size` at a new directory, unmounted when dropped; None (with a notice) where this
/// process may not mount.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(work: &Work, size: &str) -> Option<SmallDisk> {
        let dir = work.path(&format!("disk-{size}"));
        std::fs::create_dir_all(&dir).expect("a mount point");
        let status =
            Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"]).arg(&dir).stderr(Stdio::null()).status();
        match status {
            Ok(s) if s.success() => Some(SmallDisk(dir)),
            _ => {
                eprintln!("notice: cannot mount a tmpfs here (not root?); the disk-full test is skipped");
                None
            }
        }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_fails_the_export_clearly_and_leaves_no_archive() {
    let work = Work::new();
    let Some(disk) = SmallDisk::mount(&work, "16k") else { return };
    let source = work.example("source.db", &orgport_testkit::example::ExampleOptions { tasks_per_project: 400, ..Default::default() });
    let archive = disk.0.join("org.orgport");
    let out = work.export(&source, Some(&example_config()), None, &["1"], &[], &archive);
    out.fails_with(&["No space left on device"]);
    no_archive(&archive);
    // The same export where there is room is fine, and larger than the small disk.
    let roomy = work.path("org.orgport");
    work.export(&source, Some(&example_config()), None, &["1"], &[], &roomy).ok();
    assert!(std::fs::metadata(&roomy).expect("the archive").len() > 16 * 1024);
}

#[test]
fn a_full_disk_under_the_target_fails_the_import_and_leaves_it_as_it_was() {
    let work = Work::new();
    let source = work.example("source.db", &orgport_testkit::example::ExampleOptions { tasks_per_project: 400, ..Default::default() });
    let archive = work.path("org.orgport");
    work.export(&source, Some(&example_config()), None, &["1"], &[], &archive).ok();
    let target =
        work.example("target.db", &orgport_testkit::example::ExampleOptions { orgs: 2, first_org: 100, seed: 7, ..Default::default() });
    // Room for the target and its journal as they are, not for the organisation's rows.
    let size = std::fs::metadata(&target).expect("the target").len();
    let Some(disk) = SmallDisk::mount(&work, &format!("{}k", size * 2 / 1024 + 64)) else { return };
    let db = disk.0.join("target.db");
    std::fs::copy(&target, &db).expect("the target on the small disk");
    let before = snapshot(&db);
    work.import(&db, Some(&example_config()), &archive, &[]).fails_with(&["full"]);
    assert!(snapshot(&db) == before, "the target changed");
    // Nothing but the database is left on its disk (no journal, no scratch file).
    assert_eq!(dir_listing(&disk.0), vec!["target.db".to_string()]);
}
