//! `orgport serve` under load (issue 7, "Load"): clients export organisations from one server and
//! import them into another at once, more than `--max-jobs` allows. Every request succeeds or is
//! refused with 429 (and retried), every imported organisation equals its source field by field
//! and verifies against its archive, and the servers' memory stays bounded. Loopback only.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use orgport_testkit::example::ExampleOptions;

use crate::serve::Serve;
use crate::util::*;

const CLIENTS: usize = 6;
const ROUNDS: usize = 3;

/// Requests answered, by status.
#[derive(Default)]
struct Counts {
    ok: AtomicUsize,
    busy: AtomicUsize,
}

/// `request` until it is not refused with 429; its reply.
fn until_accepted(counts: &Counts, request: impl Fn() -> crate::serve::Reply) -> crate::serve::Reply {
    let started = Instant::now();
    loop {
        let reply = request();
        if reply.status != 429 {
            counts.ok.fetch_add(1, Ordering::Relaxed);
            return reply;
        }
        counts.busy.fetch_add(1, Ordering::Relaxed);
        assert!(started.elapsed() < Duration::from_secs(120), "refused with 429 for two minutes");
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn concurrent_exports_and_imports_succeed_or_are_refused_and_never_mix() {
    let w = Work::new();
    let src = w.example("source.db", &ExampleOptions { orgs: CLIENTS, tasks_per_project: 30, ..ExampleOptions::default() });
    let tgt = w.example("target.db", &ExampleOptions { orgs: 2, first_org: 100, seed: 7, users: 5, ..ExampleOptions::default() });
    let source = Serve::start(&w, &src, None, &["--max-jobs", "2"]);
    let target = Serve::start(&w, &tgt, None, &["--max-jobs", "2"]);
    let counts = Counts::default();
    let started = Instant::now();
    // Each client exports its organisation and imports it, ROUNDS times: (source org, archive,
    // new org) of every import.
    let imports: Vec<(usize, Vec<u8>, String)> = thread::scope(|s| {
        let clients: Vec<_> = (1..=CLIENTS)
            .map(|org| {
                let (source, target, counts) = (&source, &target, &counts);
                s.spawn(move || {
                    (0..ROUNDS)
                        .map(|_| {
                            let archive =
                                until_accepted(counts, || source.get(&format!("/api/orgs/{org}/export"))).status(200).body.clone();
                            let report = until_accepted(counts, || target.post("/api/orgs/import", archive.clone())).status(200).json();
                            (org, archive, new_org(&report))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        clients.into_iter().flat_map(|c| c.join().expect("a client")).collect()
    });
    let elapsed = started.elapsed();
    let (source_rss, target_rss) = (peak_rss_mib(source.pid()), peak_rss_mib(target.pid()));
    println!(
        "load: {} requests answered, {} refused with 429, in {elapsed:.1?}; peak RSS: source {source_rss} MiB, target {target_rss} MiB",
        counts.ok.load(Ordering::Relaxed),
        counts.busy.load(Ordering::Relaxed),
    );
    // Two jobs at a time, each streaming: far below what a leak or a buffered archive would take.
    assert!(source_rss < 256 && target_rss < 256, "peak RSS: source {source_rss} MiB, target {target_rss} MiB");
    drop((source, target));
    assert_eq!(imports.len(), CLIENTS * ROUNDS);
    for (i, (org, archive, new)) in imports.iter().enumerate() {
        let path = w.path(&format!("import-{i}.orgport"));
        std::fs::write(&path, archive).expect("the archive");
        w.verify(&tgt, Some(&example_config()), &path, &[new]).ok();
        // Later rounds of an organisation take the `on_conflict` policies (a suffixed slug, …).
        if i % ROUNDS == 0 {
            assert_org_equal(&src, &Cell::Int(*org as i64), &tgt, &Cell::Int(new.parse().expect("a key")), &example_specs());
        }
    }
}
