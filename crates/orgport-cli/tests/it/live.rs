//! Exports while the application writes (issue 7, "Live writes"): a load generator changes
//! organisation 1 as fast as it can — inserting, deleting and updating items — and every
//! transaction keeps an invariant: the counter row holds the number of items, their sum and a
//! digest of every item (id and value). Each archive exported meanwhile must satisfy the
//! invariant: the state of one snapshot, neither a mix of two nor a torn transaction.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;

use orgport_core::archive::ArchiveReader;
use orgport_core::value::Value;
use sha2::{Digest, Sha256};

use crate::pg::{fresh_db, psql, server};
use crate::util::*;

const EXPORTS: usize = 5;
/// Items of each organisation before the load starts: enough that an export takes a while.
const ITEMS: i64 = 20_000;

/// The schema, in SQL both engines take (`AUTOINCREMENT` aside), and the items to start with.
fn schema(autoincrement: &str, series: &str) -> String {
    format!(
        "CREATE TABLE orgs (id integer PRIMARY KEY, name text NOT NULL);
         CREATE TABLE counters (org_id integer PRIMARY KEY REFERENCES orgs(id), n bigint NOT NULL,
                                total bigint NOT NULL, digest bigint NOT NULL, version bigint NOT NULL);
         CREATE TABLE items (id {autoincrement}, org_id integer NOT NULL REFERENCES orgs(id), v bigint NOT NULL);
         INSERT INTO orgs VALUES (1, 'one'), (2, 'two');
         INSERT INTO items (org_id, v) SELECT 1 + x % 2, x % 1000 FROM {series};"
    )
}

/// An item's share of the digest: the digest of a set of items is the XOR of their shares, so
/// a transaction updates it in O(1) and any other set of items gives another digest.
fn share(id: i64, v: i64) -> i64 {
    let h = Sha256::digest(format!("{id}:{v}"));
    i64::from_le_bytes(h[..8].try_into().expect("8 bytes"))
}

/// One change of the generator to organisation 1's items.
enum Change {
    Insert(i64),
    DeleteOldest,
    BumpNewest,
}

fn change(step: u64) -> Change {
    match step % 3 {
        0 => Change::Insert((step % 97) as i64),
        1 => Change::DeleteOldest,
        _ => Change::BumpNewest,
    }
}

/// What a change did: the item before and after (id, v).
type Effect = (Option<(i64, i64)>, Option<(i64, i64)>);

/// The generator's connection: one transaction applies a change and keeps the counter row
/// (count, sum, digest, version) true to the items.
trait Writer {
    fn apply(&mut self, change: Change);
}

fn counter_update(effect: Effect) -> [i64; 3] {
    let (before, after) = effect;
    let dn = i64::from(after.is_some()) - i64::from(before.is_some());
    let dt = after.map_or(0, |a| a.1) - before.map_or(0, |b| b.1);
    let dd = before.map_or(0, |(i, v)| share(i, v)) ^ after.map_or(0, |(i, v)| share(i, v));
    [dn, dt, dd]
}

impl Writer for postgres::Client {
    fn apply(&mut self, change: Change) {
        let mut tx = self.transaction().expect("a transaction");
        let pair = |r: postgres::Row| (i64::from(r.get::<_, i32>(0)), r.get::<_, i64>(1));
        let effect: Effect = match change {
            Change::Insert(v) => {
                let row = tx.query_one("INSERT INTO items (org_id, v) VALUES (1, $1) RETURNING id, v", &[&v]).expect("insert");
                (None, Some(pair(row)))
            }
            Change::DeleteOldest => {
                let sql = "DELETE FROM items WHERE id = (SELECT min(id) FROM items WHERE org_id = 1) RETURNING id, v";
                (tx.query_opt(sql, &[]).expect("delete").map(pair), None)
            }
            Change::BumpNewest => {
                let sql = "UPDATE items SET v = v + 1 WHERE id = (SELECT max(id) FROM items WHERE org_id = 1) RETURNING id, v";
                let after = tx.query_opt(sql, &[]).expect("update").map(pair);
                (after.map(|(i, v)| (i, v - 1)), after)
            }
        };
        let [dn, dt, dd] = counter_update(effect);
        tx.execute(
            "UPDATE counters SET n = n + $1, total = total + $2, digest = digest # $3, version = version + 1 WHERE org_id = 1",
            &[&dn, &dt, &dd],
        )
        .expect("the counter");
        tx.commit().expect("commit");
    }
}

impl Writer for rusqlite::Connection {
    fn apply(&mut self, change: Change) {
        let tx = self.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).expect("a transaction");
        let pair = |r: &rusqlite::Row| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?));
        let effect: Effect = match change {
            Change::Insert(v) => {
                let row = tx.query_row("INSERT INTO items (org_id, v) VALUES (1, ?1) RETURNING id, v", [v], pair).expect("insert");
                (None, Some(row))
            }
            Change::DeleteOldest => {
                let sql = "DELETE FROM items WHERE id = (SELECT min(id) FROM items WHERE org_id = 1) RETURNING id, v";
                (tx.query_row(sql, [], pair).ok(), None)
            }
            Change::BumpNewest => {
                let sql = "UPDATE items SET v = v + 1 WHERE id = (SELECT max(id) FROM items WHERE org_id = 1) RETURNING id, v";
                let after = tx.query_row(sql, [], pair).ok();
                (after.map(|(i, v)| (i, v - 1)), after)
            }
        };
        let [dn, dt, dd] = counter_update(effect);
        // SQLite has no XOR operator: (a | b) - (a & b).
        tx.execute(
            "UPDATE counters SET n = n + ?1, total = total + ?2, digest = (digest | ?3) - (digest & ?3), version = version + 1 WHERE org_id = 1",
            [dn, dt, dd],
        )
        .expect("the counter");
        tx.commit().expect("commit");
    }
}

/// The counter rows for the items as they start, from the items themselves.
fn counters_sql(items: &[(i64, i64, i64)]) -> String {
    let rows: Vec<String> = [1, 2]
        .iter()
        .map(|org| {
            let mine = items.iter().filter(|(_, o, _)| o == org);
            let (n, total, digest) = mine.fold((0i64, 0i64, 0i64), |(n, t, d), &(id, _, v)| (n + 1, t + v, d ^ share(id, v)));
            format!("({org}, {n}, {total}, {digest}, 0)")
        })
        .collect();
    format!("INSERT INTO counters VALUES {}", rows.join(", "))
}

/// What one archive holds of organisation 1: its counter row (n, total, digest, version) and
/// items (id, v).
struct Exported {
    counter: [i64; 4],
    items: Vec<(i64, i64)>,
}

fn int(v: &Value) -> i64 {
    match v {
        Value::Int(i) => *i,
        other => panic!("not an integer: {other:?}"),
    }
}

fn read_archive(path: &Path) -> Exported {
    let mut reader = ArchiveReader::open(std::fs::File::open(path).expect("the archive")).expect("an archive");
    let manifest = reader.manifest().clone();
    let col = |t: usize, name: &str| manifest.tables[t].column_index(name).expect("a column");
    let mut out = Exported { counter: [-1; 4], items: Vec::new() };
    while let Some((t, row)) = reader.next_row().expect("a row") {
        match manifest.tables[t].name.as_str() {
            "counters" => out.counter = ["n", "total", "digest", "version"].map(|c| int(&row[col(t, c)])),
            "items" => out.items.push((int(&row[col(t, "id")]), int(&row[col(t, "v")]))),
            _ => {}
        }
    }
    out
}

/// Runs the generator on `writer` while exporting organisation 1 of `db` `EXPORTS` times; checks
/// every archive.
fn export_under_load(work: &Work, db: &str, writer: impl Writer + Send + 'static) {
    let config = work.config("orgport.toml", "root = \"orgs\"\n");
    let stop = Arc::new(AtomicBool::new(false));
    let generator = {
        let stop = stop.clone();
        let mut writer = writer;
        thread::spawn(move || {
            let mut step = 0u64;
            while !stop.load(Ordering::Relaxed) {
                writer.apply(change(step));
                step += 1;
            }
            step
        })
    };
    let mut versions = Vec::new();
    for i in 0..EXPORTS {
        let archive = work.path(&format!("org-{i}.orgport"));
        let config = config.display().to_string();
        work.run(&["export", "--db", db, "--config", &config, "--org", "1", "--out", &archive.display().to_string()]).ok();
        let got = read_archive(&archive);
        let [n, total, digest, version] = got.counter;
        assert_eq!(n, got.items.len() as i64, "archive {i}: the counter says {n} items, the archive holds {}", got.items.len());
        assert_eq!(total, got.items.iter().map(|(_, v)| v).sum::<i64>(), "archive {i}: the items' sum is not the counter's");
        let items_digest = got.items.iter().fold(0, |d, &(id, v)| d ^ share(id, v));
        assert_eq!(digest, items_digest, "archive {i}: the items are not those of version {version}");
        versions.push(version);
    }
    stop.store(true, Ordering::Relaxed);
    let transactions = generator.join().expect("the generator");
    println!("live: {db}: {transactions} transactions during {EXPORTS} exports, at versions {versions:?}");
    assert!(versions.windows(2).all(|w| w[0] < w[1]), "the generator did not write between exports: {versions:?}");
}

#[test]
fn postgres_exports_during_writes_hold_one_snapshot() {
    let Some(server) = server() else { return };
    let work = Work::new();
    let db = fresh_db(&server, "live");
    psql(&db, &["-c", &schema("serial PRIMARY KEY", &format!("generate_series(1, {}) x", 2 * ITEMS))]);
    let mut client = postgres::Client::connect(&db, postgres::NoTls).expect("a connection");
    let items: Vec<(i64, i64, i64)> = client
        .query("SELECT id, org_id, v FROM items", &[])
        .expect("the items")
        .iter()
        .map(|r| (i64::from(r.get::<_, i32>(0)), i64::from(r.get::<_, i32>(1)), r.get(2)))
        .collect();
    client.batch_execute(&counters_sql(&items)).expect("the counters");
    export_under_load(&work, &db, client);
}

#[test]
fn sqlite_exports_during_writes_hold_one_snapshot() {
    let work = Work::new();
    let path = work.path("live.db");
    let conn = rusqlite::Connection::open(&path).expect("a database");
    // WAL: readers keep their snapshot while the generator commits.
    conn.pragma_update(None, "journal_mode", "WAL").expect("WAL");
    conn.pragma_update(None, "synchronous", "NORMAL").expect("synchronous");
    conn.busy_timeout(std::time::Duration::from_secs(10)).expect("a busy timeout");
    let series = format!("(WITH RECURSIVE s(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM s WHERE x < {}) SELECT x FROM s)", 2 * ITEMS);
    conn.execute_batch(&schema("integer PRIMARY KEY AUTOINCREMENT", &series)).expect("the schema");
    let items: Vec<(i64, i64, i64)> = conn
        .prepare("SELECT id, org_id, v FROM items")
        .expect("a query")
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .expect("the items")
        .collect::<Result<_, _>>()
        .expect("the items");
    conn.execute_batch(&counters_sql(&items)).expect("the counters");
    export_under_load(&work, &url(&path), conn);
}
