//! Bad input: damaged archives, incompatible targets, unknown organisations, unreadable
//! databases and usage errors. Each must fail with an error naming what is wrong (exit 1, 2 for
//! usage) and leave the target byte for byte as it was.

use std::path::{Path, PathBuf};

use orgport_core::archive::{ArchiveReader, ArchiveWriter, Manifest};
use orgport_core::value::Value;
use orgport_testkit::example::ExampleOptions;

use crate::util::*;

struct Setup {
    w: Work,
    src: PathBuf,
    tgt: PathBuf,
    archive: PathBuf,
    config: PathBuf,
}

fn setup() -> Setup {
    let w = Work::new();
    let src = w.example("source.db", &ExampleOptions { tasks_per_project: 4, ..ExampleOptions::default() });
    let tgt =
        w.example("target.db", &ExampleOptions { orgs: 2, first_org: 100, seed: 7, tasks_per_project: 3, ..ExampleOptions::default() });
    let config = example_config();
    let archive = w.path("org-1.orgport");
    w.export(&src, Some(&config), None, &["1"], &[], &archive).ok();
    Setup { w, src, tgt, archive, config }
}

impl Setup {
    /// Writes `bytes` as an archive, then checks that import (and its dry run), verify and inspect
    /// all refuse it with every fragment in the error, and that the target did not change.
    #[track_caller]
    fn refuse(&self, name: &str, bytes: &[u8], fragments: &[&str]) {
        let path = self.w.path(name);
        std::fs::write(&path, bytes).unwrap();
        let before = self::bytes(&self.tgt);
        let out = self.w.import(&self.tgt, Some(&self.config), &path, &[]);
        assert_eq!(out.code, 1, "{name}: import must fail:\nstdout:\n{}\nstderr:\n{}", out.stdout, out.stderr);
        for f in fragments {
            assert!(out.stderr.contains(f), "{name}: the import error does not mention {f:?}:\n{}", out.stderr);
        }
        assert_same_bytes(&self.tgt, &before);
        self.w.import(&self.tgt, Some(&self.config), &path, &["--dry-run"]).fails_with(fragments);
        self.w.inspect(&path).fails_with(fragments);
        self.w.verify(&self.tgt, Some(&self.config), &path, &["100"]).fails_with(fragments);
        assert_same_bytes(&self.tgt, &before);
    }
}

fn bytes(p: &Path) -> Vec<u8> {
    crate::util::bytes(p)
}

#[test]
fn a_truncated_archive_is_refused_wherever_it_ends() {
    let s = setup();
    let full = bytes(&s.archive);
    let parts = split_archive(&full);
    let (manifest, checksum, data) = parts.offsets();
    let len = full.len();
    let cuts = [
        (0, "header"),
        (5, "header"),
        (8, "header"),
        (10, "header"),
        (14, "header"),
        (manifest, "manifest"),
        (manifest + (checksum - manifest) / 2, "manifest"),
        (checksum + 1, "header"),
        (checksum + 31, "header"),
        (data, ""),
        (data + 1, ""),
        (data + (len - data) / 4, ""),
        (data + (len - data) / 2, ""),
        (len - 2, ""),
        (len - 1, ""),
    ];
    for (at, where_) in cuts {
        let mut fragments = vec!["archive is corrupt", "truncated"];
        if !where_.is_empty() {
            fragments.push(where_);
        }
        s.refuse(&format!("cut-at-{at}.orgport"), &full[..at], &fragments);
    }
}

#[test]
fn a_flipped_byte_is_refused_in_the_header_manifest_checksum_and_data() {
    let s = setup();
    let full = bytes(&s.archive);
    let parts = split_archive(&full);
    let (manifest, checksum, data) = parts.offsets();
    let len = full.len();
    let flips: [(usize, &[&str]); 10] = [
        (0, &["not an orgport archive"]),
        (7, &["not an orgport archive"]),
        (13, &["archive is corrupt"]),
        (manifest + 2, &["manifest does not match its checksum"]),
        (manifest + (checksum - manifest) / 2, &["manifest does not match its checksum"]),
        (checksum + 5, &["manifest does not match its checksum"]),
        (data, &["archive is corrupt"]),
        (data + (len - data) / 3, &["archive is corrupt"]),
        (data + (len - data) / 2, &["archive is corrupt"]),
        (len - 1, &["archive is corrupt"]),
    ];
    for (at, fragments) in flips {
        let mut b = full.clone();
        b[at] ^= 0x20;
        s.refuse(&format!("flip-at-{at}.orgport"), &b, fragments);
    }
}

/// Every single-bit error anywhere in an archive is caught by the reader.
#[test]
fn every_single_bit_flip_is_detected_by_the_reader() {
    let w = Work::new();
    let src =
        w.example("tiny.db", &ExampleOptions { orgs: 2, projects_per_org: 1, tasks_per_project: 2, users: 3, ..ExampleOptions::default() });
    let archive = w.path("tiny.orgport");
    w.export(&src, Some(&example_config()), None, &["2"], &[], &archive).ok();
    let full = bytes(&archive);
    assert!(ArchiveReader::open(full.as_slice()).unwrap().check_all().is_ok());
    let mut undetected = Vec::new();
    for at in 0..full.len() {
        for bit in [0u8, 5] {
            let mut b = full.clone();
            b[at] ^= 1 << bit;
            let result = ArchiveReader::open(b.as_slice()).and_then(|r| r.check_all());
            if result.is_ok() {
                undetected.push((at, bit));
            }
        }
    }
    assert!(
        undetected.is_empty(),
        "{} of {} bit flips went unnoticed, e.g. {:?}",
        undetected.len(),
        full.len() * 2,
        &undetected[..undetected.len().min(10)]
    );
}

#[test]
fn a_wrong_checksum_in_the_manifest_is_refused() {
    let s = setup();
    let full = bytes(&s.archive);
    let edit = |f: &dyn Fn(&mut serde_json::Value)| -> Vec<u8> {
        let mut p = split_archive(&full);
        let mut m = p.manifest_json();
        f(&mut m);
        p.set_manifest(&m);
        p.join(true)
    };
    let table = |m: &mut serde_json::Value, name: &str| -> usize {
        m["tables"].as_array().unwrap().iter().position(|t| t["name"] == name).unwrap_or_else(|| panic!("no table {name}"))
    };
    // Sanity: re-sealing an unchanged manifest gives a good archive.
    let same = edit(&|_| {});
    let ok = s.w.path("resealed.orgport");
    std::fs::write(&ok, &same).unwrap();
    s.w.inspect(&ok).ok();

    let zeros = "0".repeat(64);
    s.refuse(
        "table-sha.orgport",
        &edit(&|m| {
            let i = table(m, "tasks");
            m["tables"][i]["sha256"] = zeros.clone().into();
        }),
        &["archive is corrupt", "tasks", "checksum"],
    );
    s.refuse("data-sha.orgport", &edit(&|m| m["data"]["sha256"] = zeros.clone().into()), &["archive is corrupt", "checksum"]);
    s.refuse(
        "data-len.orgport",
        &edit(&|m| {
            let n = m["data"]["compressed_bytes"].as_u64().unwrap();
            m["data"]["compressed_bytes"] = (n + 1).into();
        }),
        &["archive is corrupt"],
    );
    s.refuse(
        "more-rows.orgport",
        &edit(&|m| {
            let i = table(m, "projects");
            let n = m["tables"][i]["rows"].as_u64().unwrap();
            m["tables"][i]["rows"] = (n + 1).into();
        }),
        &["archive is corrupt"],
    );
    s.refuse(
        "fewer-rows.orgport",
        &edit(&|m| {
            let i = table(m, "task_labels");
            let n = m["tables"][i]["rows"].as_u64().unwrap();
            m["tables"][i]["rows"] = (n - 1).into();
        }),
        &["archive is corrupt"],
    );
    s.refuse("no-orgs.orgport", &edit(&|m| m["orgs"] = serde_json::json!([])), &["archive is corrupt", "organisation"]);
    // The manifest checksum itself is wrong.
    let mut p = split_archive(&full);
    p.checksum[0] ^= 1;
    s.refuse("manifest-sum.orgport", &p.join(false), &["manifest does not match its checksum"]);
    // A manifest that is not JSON at all, properly sealed.
    let mut p = split_archive(&full);
    p.manifest = b"{ not json".to_vec();
    s.refuse("bad-json.orgport", &p.join(true), &["archive is corrupt", "manifest"]);
}

/// Rows re-encoded with one value changed: the compressed data matches its checksum, the table's
/// rows do not.
#[test]
fn changed_rows_with_a_stale_table_checksum_are_refused() {
    let s = setup();
    let original = split_archive(&bytes(&s.archive)).manifest_json();
    let file = std::io::BufReader::new(std::fs::File::open(&s.archive).unwrap());
    let mut reader = ArchiveReader::open(file).unwrap();
    let manifest: Manifest = reader.manifest().clone();
    let mut writer = ArchiveWriter::new(Some(s.w.dir.path())).unwrap();
    let mut current = usize::MAX;
    let mut changed = false;
    while let Some((t, row)) = reader.next_row().unwrap() {
        if t != current {
            if current != usize::MAX {
                writer.end_table();
            }
            current = t;
            let mut tm = manifest.tables[t].clone();
            tm.rows = 0;
            tm.sha256 = String::new();
            writer.begin_table(tm);
        }
        let mut row = row.to_vec();
        if manifest.tables[t].name == "projects" && !changed {
            let name = manifest.tables[t].column_index("name").unwrap();
            row[name] = Value::Text("Tampered project".into());
            changed = true;
        }
        writer.write_row(&row).unwrap();
    }
    assert!(changed);
    let mut forged = Vec::new();
    writer.finish(manifest, &mut forged).unwrap();
    // The forged archive is self-consistent; put back the original checksum of `projects`.
    let mut p = split_archive(&forged);
    let mut m = p.manifest_json();
    let i = m["tables"].as_array().unwrap().iter().position(|t| t["name"] == "projects").unwrap();
    assert_ne!(m["tables"][i]["sha256"], original["tables"][i]["sha256"]);
    m["tables"][i]["sha256"] = original["tables"][i]["sha256"].clone();
    p.set_manifest(&m);
    s.refuse("stale-table-sum.orgport", &p.join(true), &["archive is corrupt", "projects", "checksum"]);
}

#[test]
fn an_unknown_format_version_is_refused_by_number() {
    let s = setup();
    let full = bytes(&s.archive);
    for version in [0u32, 3, 99, u32::MAX] {
        let mut b = full.clone();
        b[8..12].copy_from_slice(&version.to_le_bytes());
        let text = format!("archive format version {version} is not supported");
        s.refuse(&format!("v{version}.orgport"), &b, &[&text, "versions 1 to 2"]);
    }
    // Version 1 is version 2 without files: an archive without files reads as either.
    let mut v1 = full.clone();
    v1[8..12].copy_from_slice(&1u32.to_le_bytes());
    let path = s.w.path("v1.orgport");
    std::fs::write(&path, &v1).expect("writing an archive");
    assert_eq!(s.w.manifest(&path)["tables"], s.w.manifest(&s.archive)["tables"]);
}

#[test]
fn files_that_are_not_archives_are_refused() {
    let s = setup();
    s.refuse("text.orgport", b"hello, I am not an archive\n", &["not an orgport archive"]);
    s.refuse("sqlite.orgport", &bytes(&s.src), &["not an orgport archive"]);
    s.refuse("empty.orgport", b"", &["archive is corrupt", "truncated"]);
    let missing = s.w.path("missing.orgport");
    let before = bytes(&s.tgt);
    s.w.import(&s.tgt, Some(&s.config), &missing, &[]).fails_with(&["missing.orgport"]);
    s.w.inspect(&missing).fails_with(&["missing.orgport"]);
    assert_same_bytes(&s.tgt, &before);
    assert!(!missing.exists());
}

#[test]
fn a_target_lacking_tables_or_columns_is_refused_with_every_difference() {
    let s = setup();
    let tgt = s.w.copy(&s.tgt, "altered.db");
    open(&tgt)
        .execute_batch("ALTER TABLE tasks DROP COLUMN metadata; DROP TABLE \"event-log\"; ALTER TABLE labels DROP COLUMN color;")
        .unwrap();
    let before = bytes(&tgt);
    for extra in [&[][..], &["--dry-run"][..]] {
        s.w.import(&tgt, Some(&s.config), &s.archive, extra).fails_with(&[
            "does not match the archive",
            "table `event-log` is missing",
            "column `tasks.metadata` is missing",
            "column `labels.color` is missing",
        ]);
        assert_same_bytes(&tgt, &before);
    }
    s.w.verify(&tgt, Some(&s.config), &s.archive, &["100"]).fails_with(&["event-log", "tasks.metadata"]);
}

#[test]
fn a_target_column_of_another_type_is_refused() {
    let s = setup();
    let schema = std::fs::read_to_string(repo_root().join("examples/saas/schema.sql")).unwrap();
    let changed = schema.replace("content   BLOB NOT NULL", "content   INTEGER NOT NULL");
    assert_ne!(schema, changed, "test setup: the schema text changed");
    let tgt = s.w.db(
        "typed.db",
        &format!("{changed}\nINSERT INTO plans VALUES ('free', 'Free', 3), ('team', 'Team', 50), ('enterprise', 'Enterprise', NULL);"),
    );
    let before = bytes(&tgt);
    s.w.import(&tgt, Some(&s.config), &s.archive, &[]).fails_with(&["attachments.content", "BLOB", "INTEGER"]);
    assert_same_bytes(&tgt, &before);
}

#[test]
fn an_archive_of_another_schema_is_refused() {
    let s = setup();
    let other = s.w.db("other.db", "CREATE TABLE tenants (id INTEGER PRIMARY KEY, name TEXT); INSERT INTO tenants VALUES (1, 'a');");
    let archive = s.w.path("other.orgport");
    s.w.export(&other, None, Some("tenants"), &["1"], &[], &archive).ok();
    let before = bytes(&s.tgt);
    s.w.import(&s.tgt, Some(&s.config), &archive, &[]).fails_with(&["tenants"]);
    assert_same_bytes(&s.tgt, &before);
}

#[test]
fn exporting_an_organisation_that_does_not_exist_names_it_and_writes_nothing() {
    let s = setup();
    let out = s.w.path("nope.orgport");
    let listing = dir_listing(s.w.dir.path());
    let src_before = bytes(&s.src);
    s.w.export(&s.src, Some(&s.config), None, &["999"], &[], &out).fails_with(&["organisation 999 not found", "workspaces"]);
    s.w.export(&s.src, Some(&s.config), None, &["1", "12345"], &[], &out).fails_with(&["12345", "not found"]);
    s.w.export(&s.src, Some(&s.config), None, &["abc"], &[], &out).fails_with(&["abc", "integer"]);
    assert!(!out.exists());
    assert_eq!(dir_listing(s.w.dir.path()), listing, "a failed export leaves no file behind");
    assert_same_bytes(&s.src, &src_before);
    // verify of an organisation that does not exist on the target.
    s.w.verify(&s.tgt, Some(&s.config), &s.archive, &["424242"]).fails_with(&["424242", "not found"]);
}

#[test]
fn export_does_not_overwrite_an_existing_file_unless_forced() {
    let s = setup();
    let out = s.w.path("precious.orgport");
    std::fs::write(&out, b"precious").unwrap();
    s.w.export(&s.src, Some(&s.config), None, &["2"], &[], &out).fails_with(&["already exists", "--force"]);
    assert_eq!(bytes(&out), b"precious");
    s.w.export(&s.src, Some(&s.config), None, &["2"], &["--force"], &out).ok();
    let (m, _) = archive_rows(&out);
    assert_eq!(m.orgs, vec![Value::Int(2)]);
}

#[test]
fn unreadable_or_missing_databases_are_named_and_left_alone() {
    let s = setup();
    let text = s.w.path("notes.txt");
    std::fs::write(&text, "this is not a database\n".repeat(100)).unwrap();
    let text_before = bytes(&text);
    let out = s.w.path("x.orgport");
    s.w.export(&text, Some(&s.config), None, &["1"], &[], &out).fails_with(&["notes.txt", "not a readable SQLite database"]);
    s.w.import(&text, Some(&s.config), &s.archive, &[]).fails_with(&["notes.txt", "not a readable SQLite database"]);
    s.w.run(&["plan", "--db", &url(&text), "--config", &s.config.display().to_string()]).fails_with(&["notes.txt"]);
    s.w.verify(&text, Some(&s.config), &s.archive, &["1"]).fails_with(&["notes.txt"]);
    assert_same_bytes(&text, &text_before);

    let missing = s.w.path("missing.db");
    s.w.export(&missing, Some(&s.config), None, &["1"], &[], &out).fails_with(&["missing.db", "does not exist"]);
    s.w.import(&missing, Some(&s.config), &s.archive, &[]).fails_with(&["missing.db", "does not exist"]);
    s.w.verify(&missing, Some(&s.config), &s.archive, &["1"]).fails_with(&["missing.db", "does not exist"]);
    assert!(!missing.exists(), "a missing target must not be created");
    assert!(!out.exists());

    // A directory, an unsupported URL scheme, a URL without a path.
    let dir = s.w.path("a-directory");
    std::fs::create_dir(&dir).unwrap();
    s.w.import(&dir, Some(&s.config), &s.archive, &[]).fails_with(&["a-directory"]);
    s.w.run(&["import", "--db", "postgres://localhost/app", "--in", &s.archive.display().to_string()])
        .fails_with(&["postgres://localhost/app"]);
    s.w.run(&["import", "--db", "sqlite://", "--in", &s.archive.display().to_string()]).fails_with(&["sqlite://"]);
}

#[test]
fn an_empty_file_as_target_is_refused_and_stays_empty() {
    let s = setup();
    let empty = s.w.path("empty.db");
    std::fs::write(&empty, b"").unwrap();
    s.w.import(&empty, Some(&s.config), &s.archive, &[]).fails_with(&["workspaces"]);
    assert_eq!(bytes(&empty), b"");
    assert_eq!(dir_listing(s.w.dir.path()).iter().filter(|f| f.starts_with("empty.db")).count(), 1, "no journal left behind");
}

#[test]
fn a_tampered_target_fails_verify_with_the_difference() {
    let s = setup();
    let report = s.w.import_json(&s.tgt, Some(&s.config), &s.archive);
    let org = new_org(&report);
    s.w.verify(&s.tgt, Some(&s.config), &s.archive, &[&org]).ok();
    let conn = open(&s.tgt);
    let k: i64 = org.parse().unwrap();
    let pristine = s.w.copy(&s.tgt, "pristine.db");

    // A changed cell.
    conn.execute("UPDATE tasks SET title = title || '!' WHERE id = (SELECT min(t.id) FROM tasks t JOIN projects p ON p.id = t.project_id WHERE p.workspace_id = ?1)", [k]).unwrap();
    let out = s.w.verify(&s.tgt, Some(&s.config), &s.archive, &[&org]);
    assert_eq!(out.code, 1, "verify must notice a changed title:\n{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("tasks") && out.stdout.contains("NOT equal"), "{}", out.stdout);

    // A missing row.
    let t2 = s.w.copy(&pristine, "deleted.db");
    open(&t2)
        .execute("DELETE FROM \"event-log\" WHERE rowid = (SELECT max(rowid) FROM \"event-log\" WHERE workspace_id = ?1)", [k])
        .unwrap();
    let out = s.w.verify(&t2, Some(&s.config), &s.archive, &[&org]);
    assert_eq!(out.code, 1, "verify must notice a missing row:\n{}", out.stdout);
    assert!(out.stdout.contains("event-log"), "{}", out.stdout);

    // The last rows of a table paired by key order.
    let t5 = s.w.copy(&pristine, "truncated.db");
    let gone = open(&t5)
        .execute(
            "DELETE FROM attachments WHERE id IN (SELECT a.id FROM attachments a JOIN tasks t ON t.id = a.task_id \
             JOIN projects p ON p.id = t.project_id WHERE p.workspace_id = ?1 ORDER BY a.id DESC LIMIT 2)",
            [k],
        )
        .unwrap();
    assert_eq!(gone, 2);
    let out = s.w.verify(&t5, Some(&s.config), &s.archive, &[&org]);
    assert_eq!(out.code, 1, "verify must notice missing last rows:\n{}", out.stdout);
    let attachments = count(&open(&pristine), "SELECT count(*) FROM attachments a JOIN tasks t ON t.id = a.task_id JOIN projects p ON p.id = t.project_id WHERE p.workspace_id = ?1", &[&k]);
    for n in [attachments - 1, attachments] {
        let line = format!("table `attachments`: archive row {n} is missing on the target");
        assert!(out.stdout.contains(&line), "no `{line}` in:\n{}", out.stdout);
    }

    // An extra row.
    let t3 = s.w.copy(&pristine, "extra.db");
    open(&t3).execute("INSERT INTO gift_cards (workspace_id, code, amount_cents) VALUES (?1, 'EXTRA-CARD', 1)", [k]).unwrap();
    let out = s.w.verify(&t3, Some(&s.config), &s.archive, &[&org]);
    assert_eq!(out.code, 1, "verify must notice an extra row:\n{}", out.stdout);
    assert!(out.stdout.contains("gift_cards"), "{}", out.stdout);

    // A reference moved to another row of the same organisation.
    let t4 = s.w.copy(&pristine, "moved.db");
    let moved = open(&t4)
        .execute(
            "UPDATE tasks SET parent_id = NULL WHERE id = (SELECT min(t.id) FROM tasks t JOIN projects p ON p.id = t.project_id \
             WHERE p.workspace_id = ?1 AND t.parent_id IS NOT NULL)",
            [k],
        )
        .unwrap();
    assert_eq!(moved, 1);
    let out = s.w.verify(&t4, Some(&s.config), &s.archive, &[&org]);
    assert_eq!(out.code, 1, "verify must notice a changed parent:\n{}", out.stdout);
    assert!(out.stdout.contains("tasks"), "{}", out.stdout);
}

#[test]
fn usage_errors_exit_with_code_2() {
    let w = Work::new();
    let db = url(&w.path("x.db"));
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec![], "Usage"),
        (vec!["frobnicate"], "frobnicate"),
        (vec!["export", "--db", &db, "--out", "x.orgport"], "--org"),
        (vec!["import", "--db", &db], "--in"),
        (vec!["plan", "--db", &db, "--format", "xml"], "xml"),
        (vec!["verify", "--db", &db, "--in", "a.orgport"], "--org"),
        (vec!["inspect", "--in", "a.orgport", "--bogus"], "--bogus"),
    ];
    for (args, fragment) in cases {
        let out = w.run(&args);
        assert_eq!(out.code, 2, "{args:?} is a usage error:\nstdout:\n{}\nstderr:\n{}", out.stdout, out.stderr);
        assert!(out.stderr.contains(fragment), "{args:?}: the error does not name {fragment:?}:\n{}", out.stderr);
    }
    assert!(!w.path("x.db").exists());
}

/// `export` never writes to the source: not even `--force` may replace the database being read
/// with the archive.
#[test]
fn export_never_replaces_its_own_source_database() {
    let s = setup();
    let before = bytes(&s.src);
    let out = s.w.export(&s.src, Some(&s.config), None, &["1"], &["--force"], &s.src);
    assert_eq!(out.code, 1, "export overwrote its own source with the archive:\n{}", out.stderr);
    assert!(out.stderr.contains("source.db"), "{}", out.stderr);
    assert_same_bytes(&s.src, &before);
}

#[test]
fn export_into_a_missing_directory_names_it() {
    let s = setup();
    let out = s.w.path("no/such/dir/x.orgport");
    s.w.export(&s.src, Some(&s.config), None, &["1"], &[], &out).fails_with(&["no/such/dir"]);
    assert!(!s.w.path("no").exists());
}

/// `orgport inspect | head`: a reader that leaves before the output is written ends the command
/// quietly, without a panic.
#[test]
fn a_reader_leaving_stdout_early_is_no_error() {
    let s = setup();
    let bin = assert_cmd::cargo::cargo_bin("orgport");
    for args in
        [vec!["inspect", "--in", s.archive.to_str().unwrap()], vec!["plan", "--db", &url(&s.src), "--config", s.config.to_str().unwrap()]]
    {
        // `true` has exited when orgport starts writing, so every write meets a closed pipe.
        let script = r#"set -o pipefail; { sleep 0.3; exec "$@"; } | true; echo "status ${PIPESTATUS[0]}""#;
        let out = std::process::Command::new("bash").arg("-c").arg(script).arg("bash").arg(&bin).args(&args).output().unwrap();
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert_eq!(stdout.trim(), "status 0", "{args:?}: {stderr}");
        assert!(stderr.is_empty(), "{args:?}: {stderr}");
    }
}
