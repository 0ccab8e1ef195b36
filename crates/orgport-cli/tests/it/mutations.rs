//! Mutated archives never reach the target (issue 7, "Bad input"): a real archive of the example
//! organisation with embedded files, flipped byte by byte, cut short and forged with a resealed
//! manifest, each imported through the library into a target that holds data and files. Every
//! one must fail — never succeed, never panic — before the first write to the database or the
//! store (counted by the fault sweep's wrappers, with no fault), and leave the target's database
//! file and store exactly as they were; the forged absurd sizes and the decompression bomb must
//! not cost memory by their declared size.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use orgport_core::import::{import, FilesImport, ImportOptions, ImportReport};
use orgport_core::plan::Plan;
use orgport_core::store::ObjectStore;
use orgport_testkit::example::ExampleOptions;
use serde_json::json;

use crate::faults::{Fault, FaultyEngine, FaultyStore, Site};
use crate::util::*;

/// Organisation 1's objects in the source store: key and size (one empty, one larger than the
/// part the import reads into memory).
const FILES: [(&str, usize); 5] =
    [("1/a.txt", 0), ("1/docs/b.bin", 700), ("1/docs/c.bin", 5_000), ("1/d.bin", 20_000), ("1/big.bin", 1_100_000)];

/// The target: a database with two organisations of its own, a store holding a file of each, and
/// its plan.
struct Target {
    db: PathBuf,
    store: PathBuf,
    plan: Plan,
}

impl Target {
    fn new(w: &Work, name: &str) -> Target {
        let opts = ExampleOptions { orgs: 2, first_org: 100, seed: 7, users: 5, tasks_per_project: 2, ..ExampleOptions::default() };
        let db = w.example(&format!("{name}.db"), &opts);
        let store = w.path(&format!("{name}-files"));
        for org in [100, 101] {
            std::fs::create_dir_all(store.join(org.to_string())).expect("a store directory");
            std::fs::write(store.join(format!("{org}/own.bin")), random_bytes(org, 300)).expect("a target file");
        }
        let mut engine = orgport_sqlite::SqliteEngine::open_path(&db, orgport_sqlite::Access::ReadOnly).expect("the target");
        let plan = plan_with(&mut engine, &example_config_with_files(&store));
        Target { db, store, plan }
    }

    /// What must not change: the database file's bytes, the store's files with their bytes and
    /// its top-level entries (a new organisation's prefix).
    fn state(&self) -> (Vec<u8>, BTreeMap<String, Vec<u8>>, Vec<String>) {
        let files = walk(&self.store, &self.store).into_iter().map(|k| (k.clone(), bytes(&self.store.join(&k)))).collect();
        (bytes(&self.db), files, dir_listing(&self.store))
    }

    /// The library's import of `archive`, panics caught, through the fault sweep's wrappers with
    /// no fault: they count the database writes and object writes the import made.
    fn import(&self, archive: &Arc<[u8]>) -> (std::thread::Result<orgport_core::Result<ImportReport>>, Writes) {
        let open = || -> orgport_core::Result<Box<dyn Read>> { Ok(Box::new(std::io::Cursor::new(archive.clone()))) };
        let (writes, puts) = (Fault::counting(Site::Write), Fault::counting(Site::ObjectPut));
        let stores = |url: &str| -> orgport_core::Result<Box<dyn ObjectStore>> {
            Ok(Box::new(FaultyStore { inner: orgport_objects::open_store(url, |_| None)?, fault: puts.clone() }))
        };
        let options = ImportOptions { dry_run: false, files: Some(FilesImport { open: &stores, jobs: 2 }) };
        let result = catch_unwind(AssertUnwindSafe(|| {
            let inner = Box::new(orgport_sqlite::SqliteEngine::open_path(&self.db, orgport_sqlite::Access::ReadWrite)?);
            let mut engine = FaultyEngine { inner, fault: writes.clone() };
            import(&mut engine, &self.plan, &open, &options, &orgport_core::progress::Quiet)
        }));
        (result, Writes { rows: writes.seen(), objects: puts.seen() })
    }
}

/// What an import wrote to the database (statements, bulk writes, the commit) and the store.
#[derive(Debug, PartialEq)]
struct Writes {
    rows: usize,
    objects: usize,
}

/// Tallies what the mutated imports ended in.
#[derive(Default)]
struct Tally {
    cases: usize,
    errors: BTreeMap<String, usize>,
    failures: Vec<String>,
}

impl Tally {
    /// Imports `archive` (described by `what`) and records whether it failed cleanly.
    fn case(&mut self, target: &Target, before: &(Vec<u8>, BTreeMap<String, Vec<u8>>, Vec<String>), what: &str, archive: Vec<u8>) {
        self.cases += 1;
        let (result, writes) = target.import(&archive.into());
        if writes != (Writes { rows: 0, objects: 0 }) {
            self.failures.push(format!("{what}: the import wrote before it failed: {writes:?}"));
        }
        match result {
            Err(_) => self.failures.push(format!("{what}: the import panicked")),
            Ok(Ok(_)) => self.failures.push(format!("{what}: the import succeeded")),
            Ok(Err(e)) => {
                let kind = format!("{e:?}").split(['(', ' ', '{']).next().unwrap_or_default().to_string();
                if std::env::var_os("MUTATIONS_VERBOSE").is_some() {
                    eprintln!("{what}: {kind}: {e}");
                }
                *self.errors.entry(kind).or_default() += 1;
            }
        }
        if target.state() != *before {
            self.failures.push(format!("{what}: the target changed"));
        }
    }
}

/// `good` with its rows replaced by a zstd frame of 1 GiB (1024 text values of 1 MiB, a few KiB
/// compressed) in a first table declaring 10^12 rows, its files dropped and every checksum
/// resealed: only the reader's limit on expansion stops it.
fn bomb(good: &[u8]) -> Vec<u8> {
    let value = [&[5u8][..], &(1u32 << 20).to_le_bytes(), &vec![b'a'; 1 << 20]].concat();
    let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 1).expect("an encoder");
    for _ in 0..1024 {
        encoder.write_all(&value).expect("compressed");
    }
    let data = encoder.finish().expect("a frame");
    let mut parts = split_archive(good);
    let mut m = parts.manifest_json();
    m["data"] = json!({"compressed_bytes": data.len(), "sha256": hex(&sha256(&data))});
    m["tables"][0]["rows"] = json!(1_000_000_000_000u64);
    m["files"] = json!([]);
    parts.set_manifest(&m);
    parts.data = data;
    parts.join(true)
}

/// A deterministic xorshift sequence.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A position in `range`.
    fn within(&mut self, range: &std::ops::Range<usize>) -> usize {
        range.start + (self.next() % (range.end - range.start) as u64) as usize
    }
}

/// The process's peak resident memory so far, in KiB (Linux).
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn mutated_archives_fail_cleanly_and_never_reach_the_target() {
    let started = Instant::now();
    let w = Work::new();
    let src = w.example("source.db", &ExampleOptions { tasks_per_project: 2, ..ExampleOptions::default() });
    let source_store = w.path("source-files");
    for (i, (key, size)) in FILES.iter().enumerate() {
        let path = source_store.join(key);
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("a store directory");
        std::fs::write(path, random_bytes(i as u64 + 1, *size)).expect("a source file");
    }
    let archive = w.path("org.orgport");
    w.export(&src, Some(&w.config("source.toml", &example_config_with_files(&source_store))), None, &["1"], &[], &archive).ok();
    let good = bytes(&archive);
    let parts = split_archive(&good);
    let manifest = parts.manifest_json();
    assert_eq!(manifest["files"][0]["files"].as_array().expect("files").len(), FILES.len(), "test setup: every file embedded");

    // The archive as it is imports: the failures below are the mutations'.
    let control = Target::new(&w, "control");
    let (report, writes) = control.import(&good.clone().into());
    assert_eq!(report.expect("no panic").expect("the unchanged archive imports").files[0].files, FILES.len() as u64);
    // Every file, and the import's journal note.
    assert!(writes.rows > 0 && writes.objects == FILES.len() + 1, "the counters count nothing: {writes:?}");

    let target = Target::new(&w, "target");
    let before = target.state();
    let mut tally = Tally::default();

    // Single-byte flips, at deterministic positions of every section.
    let (manifest_at, checksum_at, data_at) = parts.offsets();
    let files_at = data_at + manifest["data"]["compressed_bytes"].as_u64().expect("data length") as usize;
    let sections = [("header", 0..manifest_at, 48), ("manifest", manifest_at..checksum_at, 600), ("checksum", checksum_at..data_at, 64)];
    let sections = sections.into_iter().chain([("data", data_at..files_at, 900), ("files", files_at..good.len(), 600)]);
    let mut rng = Rng(0x5eed_f11b_0a11_f11b);
    for (section, range, count) in sections {
        for _ in 0..count {
            let at = rng.within(&range);
            let mask = (rng.next() % 255 + 1) as u8;
            let mut bad = good.clone();
            bad[at] ^= mask;
            tally.case(&target, &before, &format!("{section} byte {at} ^ {mask:#04x}"), bad);
        }
    }
    let flips = tally.cases;

    // Truncations: inside the header, then spread over the whole archive.
    let step = good.len() / 200;
    for len in (0..16).chain((16..good.len()).step_by(step)).chain([files_at, good.len() - 1]) {
        tally.case(&target, &before, &format!("cut at {len}"), good[..len].to_vec());
    }
    let truncations = tally.cases - flips;

    // Forged: the manifest rewritten and resealed with its checksum recomputed.
    let rss_before = peak_rss_kib();
    let forge = |edit: &dyn Fn(&mut serde_json::Value)| {
        let mut parts = split_archive(&good);
        let mut m = parts.manifest_json();
        edit(&mut m);
        parts.set_manifest(&m);
        parts.join(true)
    };
    let files = manifest["files"][0]["files"].as_array().expect("files").len();
    let tables = manifest["tables"].as_array().expect("tables").len();
    let mut forged: Vec<(String, Vec<u8>)> = vec![
        ("compressed_bytes = u64::MAX".into(), forge(&|m| m["data"]["compressed_bytes"] = json!(u64::MAX))),
        ("compressed_bytes = 0".into(), forge(&|m| m["data"]["compressed_bytes"] = json!(0))),
        ("duplicate file keys".into(), forge(&|m| m["files"][0]["files"][1]["key"] = m["files"][0]["files"][0]["key"].clone())),
        (
            "files listed twice".into(),
            forge(&|m| {
                let listed = m["files"][0]["files"].as_array().unwrap().clone();
                m["files"][0]["files"].as_array_mut().unwrap().extend(listed);
            }),
        ),
        ("organisation keys nested 100 000 deep".into(), {
            let mut parts = split_archive(&good);
            let mut m = parts.manifest_json();
            m["orgs"] = json!("DEEP");
            let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
            parts.manifest = serde_json::to_string(&m).unwrap().replace("\"DEEP\"", &deep).into_bytes();
            parts.join(true)
        }),
        ("no organisation".into(), forge(&|m| m["orgs"] = json!([]))),
        ("a trailing byte".into(), [good.as_slice(), &[0]].concat()),
        ("manifest length u32::MAX".into(), {
            let mut bad = good.clone();
            bad[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
            bad
        }),
    ];
    let declared = manifest["data"]["uncompressed_bytes"].as_u64().expect("a declared decompressed size");
    forged.push(("decompressed size - 1".into(), forge(&|m| m["data"]["uncompressed_bytes"] = json!(declared - 1))));
    forged.push(("decompressed size + 1".into(), forge(&|m| m["data"]["uncompressed_bytes"] = json!(declared + 1))));
    forged.push(("decompressed size 1e15".into(), forge(&|m| m["data"]["uncompressed_bytes"] = json!(1_000_000_000_000_000u64))));
    forged.push(("a decompression bomb of 1 GiB, no size declared".into(), bomb(&good)));
    for t in 0..tables {
        forged.push((format!("table {t} rows = 1e12"), forge(&|m| m["tables"][t]["rows"] = json!(1_000_000_000_000u64))));
    }
    for f in 0..files {
        forged.push((format!("file {f} size = 1e15"), forge(&|m| m["files"][0]["files"][f]["size"] = json!(1_000_000_000_000_000u64))));
        forged.push((
            format!("file {f} size + 1"),
            forge(&|m| m["files"][0]["files"][f]["size"] = json!(m["files"][0]["files"][f]["size"].as_u64().unwrap() + 1)),
        ));
    }
    for key in ["../../etc/passwd", "1/../../etc/passwd", "/etc/passwd", "1//x", "1/./x", "1/x\\..\\..\\y"] {
        forged.push((format!("file key {key:?}"), forge(&|m| m["files"][0]["files"][0]["key"] = json!(key))));
    }
    for (what, bad) in forged {
        tally.case(&target, &before, &what, bad);
    }
    let forged = tally.cases - flips - truncations;
    let rss_after = peak_rss_kib();

    eprintln!(
        "mutations: {flips} flips, {truncations} truncations, {forged} forged; {} detected; errors {:?}; peak RSS {rss_before:?} → {rss_after:?} KiB; {:.1} s",
        tally.cases - tally.failures.len(),
        tally.errors,
        started.elapsed().as_secs_f64()
    );
    assert!(
        tally.failures.is_empty(),
        "{} of {} mutated archives were not refused cleanly:\n{}",
        tally.failures.len(),
        tally.cases,
        tally.failures.join("\n")
    );
    assert!(flips >= 2_000 && truncations >= 200, "{flips} flips, {truncations} truncations");
    // Nothing is allocated by a declared size: sizes of 1e12 rows, 1e15 bytes and u64::MAX bytes of
    // data cost no more than the archive itself (a few MiB), far under this bound.
    if let (Some(before), Some(after)) = (rss_before, rss_after) {
        assert!(after - before < 200 << 10, "peak RSS grew by {} KiB over the forged archives", after - before);
    }
}
