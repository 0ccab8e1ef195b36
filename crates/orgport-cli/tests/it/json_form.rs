//! The single-JSON form of an archive through the command line: `export --format json` (or an
//! `--out` ending in `.json`), and `import`, `verify`, `inspect` of a JSON document. Its round
//! trip equals the binary one's, row by row and file by file; damaged documents are refused
//! before anything is written. And `export --all --exclude`.

use std::path::{Path, PathBuf};

use crate::serve::with_files;
use crate::util::*;

/// Source and target with files in directories of their own; org 1's files on the source.
struct Files {
    src: PathBuf,
    src_config: PathBuf,
}

fn files_source(w: &Work, src: &Path) -> Files {
    let dir = w.path("files-source");
    let src_config = with_files(w, "source.toml", &dir);
    std::fs::create_dir_all(dir.join("1/logos")).unwrap();
    std::fs::write(dir.join("1/logos/a b.png"), random_bytes(1, 5000)).unwrap();
    std::fs::write(dir.join("1/notes.txt"), b"first line\n\"quoted\" \xe2\x9c\x93\n").unwrap();
    Files { src: src.to_path_buf(), src_config }
}

#[test]
fn a_round_trip_through_json_equals_one_through_the_binary_archive_field_by_field() {
    let w = Work::new();
    let (src, tgt) = example_pair(&w);
    let files = files_source(&w, &src);
    let (bin, json) = (w.path("org.orgport"), w.path("org.json"));
    w.export(&files.src, Some(&files.src_config), None, &["1"], &["--with", "passwords", "--allow-plaintext-secrets"], &bin).ok();
    // `.json` picks the form; `--format` says it outright.
    w.export(&files.src, Some(&files.src_config), None, &["1"], &["--with", "passwords", "--allow-plaintext-secrets"], &json).ok();
    let explicit = w.path("explicit.data");
    w.export(
        &files.src,
        Some(&files.src_config),
        None,
        &["1"],
        &["--with", "passwords", "--allow-plaintext-secrets", "--format", "json"],
        &explicit,
    )
    .ok();
    let text = std::fs::read_to_string(&json).unwrap();
    assert!(text.starts_with("{\"orgport_json\":1,"), "{}", &text[..80]);
    assert!(!text.contains(' '), "the document is one shell word");
    assert!(bytes(&explicit).starts_with(b"{"));

    // The same manifest (but the compressed data's length and checksum, of the binary form).
    let without_data = |mut m: serde_json::Value| {
        m.as_object_mut().unwrap().remove("data");
        m.as_object_mut().unwrap().remove("created_unix");
        m
    };
    assert_eq!(without_data(w.manifest(&json)), without_data(w.manifest(&bin)));

    // Two copies of the target, each with its own store; one imports each form.
    let (tgt_bin, tgt_json) = (w.copy(&tgt, "target-bin.db"), w.copy(&tgt, "target-json.db"));
    let (dir_bin, dir_json) = (w.path("files-bin"), w.path("files-json"));
    let (config_bin, config_json) = (with_files(&w, "bin.toml", &dir_bin), with_files(&w, "json.toml", &dir_json));
    let report_bin = w.import_json(&tgt_bin, Some(&config_bin), &bin);
    let report_json = w.import_json(&tgt_json, Some(&config_json), &json);
    let without_store = |mut r: serde_json::Value| {
        r["files"][0].as_object_mut().unwrap().remove("store");
        r
    };
    assert_eq!(without_store(report_bin), without_store(report_json.clone()));
    let org = new_org(&report_json);
    let v = w.verify(&tgt_json, Some(&config_json), &json, &[&org]);
    v.ok();
    assert!(v.stdout.contains("verified: 2 files"), "{}", v.stdout);
    w.verify(&tgt_json, Some(&config_json), &bin, &[&org]).ok();
    // Every row of every table, and every file, alike (but the random values that stand for
    // withheld secrets, and `api_tokens`' UUID keys, which each import draws anew).
    let masked = |db: &Path| {
        let mut all = snapshot(db);
        for (table, rows) in all.iter_mut() {
            for row in rows.iter_mut() {
                if table == "api_tokens" {
                    row[0] = Cell::Null;
                }
                for cell in row.iter_mut() {
                    if let Cell::Text(t) = cell {
                        if t.starts_with("!orgport-withheld-") {
                            *t = "withheld".into();
                        }
                    }
                }
            }
            rows.sort();
        }
        all
    };
    assert_eq!(masked(&tgt_bin), masked(&tgt_json));
    assert_eq!(walk(&dir_bin, &dir_bin), walk(&dir_json, &dir_json));
    for key in walk(&dir_json, &dir_json) {
        assert_eq!(bytes(&dir_bin.join(&key)), bytes(&dir_json.join(&key)), "{key}");
    }
    assert_eq!(bytes(&dir_json.join(format!("{org}/logos/a b.png"))), random_bytes(1, 5000));
    assert_org_equal(&src, &Cell::Int(1), &tgt_json, &Cell::Int(org.parse().unwrap()), &example_specs());
}

#[test]
fn a_damaged_json_archive_is_refused_and_the_target_stays_as_it_was() {
    let w = Work::new();
    let (src, tgt) = example_pair(&w);
    let files = files_source(&w, &src);
    let json = w.path("org.json");
    w.export(&files.src, Some(&files.src_config), None, &["1"], &[], &json).ok();
    let text = std::fs::read_to_string(&json).unwrap();
    let dir = w.path("files-target");
    let config = with_files(&w, "target.toml", &dir);
    let before = snapshot(&tgt);
    // The first workspace row, as the document holds it.
    let at = text.find("\"name\":\"workspaces\",\"rows\":[[").expect("the workspaces table") + "\"name\":\"workspaces\",\"rows\":[[".len();
    let first = &text[at..at + 1];
    assert_eq!(first, "1", "the first workspace's key");
    let with = |replacement: &str| format!("{}{replacement}{}", &text[..at], &text[at + 1..]);
    let cases: Vec<(&str, String, &[&str])> = vec![
        ("a wrong type", with("true"), &["rows of table `workspaces` do not match their checksum"]),
        ("a float for an integer", with("1.5"), &["table `workspaces`, row 1, column `id`", "not an integer"]),
        ("a changed value", with("7"), &["rows of table `workspaces` do not match their checksum"]),
        (
            "an unknown field",
            text.replacen("\"orgport_json\":1,", "\"orgport_json\":1,\"comment\":\"x\",", 1),
            &["unknown field `comment`"],
        ),
        ("a value of an unknown kind", with("{\"bigint\":\"1\"}"), &["unknown field `bigint`", "table `workspaces`, row 1, column `id`"]),
        ("truncated", text[..text.len() * 2 / 3].to_string(), &["JSON archive is not valid", "EOF"]),
        ("not JSON", format!("{{{}", &text[1..].replacen(',', ";", 1)), &["JSON archive is not valid", "line 1"]),
    ];
    for (what, damaged, fragments) in cases {
        let bad = w.path("bad.json");
        std::fs::write(&bad, &damaged).unwrap();
        w.import(&tgt, Some(&config), &bad, &[]).fails_with(fragments);
        assert_eq!(snapshot(&tgt), before, "{what}: the target changed");
        assert!(dir_listing(&dir).is_empty(), "{what}: a file was written");
        w.run(&["inspect", "--in", bad.to_str().unwrap()]).fails_with(fragments);
    }
}

#[test]
fn export_all_but_some_organisations() {
    let w = Work::new();
    let (src, _) = example_pair(&w);
    let export = |orgs: &[&str], extra: &[&str], out: &Path| w.export(&src, Some(&example_config()), None, orgs, extra, out);
    let out = w.path("all.orgport");
    export(&[], &["--all", "--exclude", "2"], &out).ok();
    assert_eq!(w.manifest(&out)["orgs"], serde_json::json!([{"int": 1}, {"int": 3}]));
    let all = w.path("all.json");
    export(&[], &["--all"], &all).ok();
    assert_eq!(w.manifest(&all)["orgs"], serde_json::json!([{"int": 1}, {"int": 2}, {"int": 3}]));
    let other = w.path("other.orgport");
    export(&[], &["--all", "--exclude", "99"], &other).fails_with(&["organisation 99 not found"]);
    export(&[], &["--all", "--exclude", "1", "--exclude", "2", "--exclude", "3"], &other)
        .fails_with(&["no organisation", "left to export"]);
    let usage = export(&["1"], &["--all"], &other);
    assert!(usage.code == 2 && usage.stderr.contains("cannot be used with"), "{usage:?}");
    export(&["1"], &["--exclude", "2"], &other).fails_with(&["`--exclude` goes with `--all`"]);
    assert!(!other.exists());
}
