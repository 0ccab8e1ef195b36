//! Round trips compared field by field: every value type on a schema of our own, and the example
//! SaaS database into a target that already holds other organisations.

use std::collections::{BTreeMap, BTreeSet};

use rusqlite::types::Value as V;

use crate::util::*;

const VALUE_SCHEMA: &str = r#"
CREATE TABLE orgs (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    logo       BLOB,
    settings   JSON,
    balance    DECIMAL(20,4),
    created_at TIMESTAMP
);
CREATE TABLE vals (
    id          INTEGER PRIMARY KEY,
    org_id      INTEGER NOT NULL REFERENCES orgs(id),
    seq         INTEGER NOT NULL,
    c_int       INTEGER,
    c_bigint    BIGINT,
    c_real      REAL,
    c_double    DOUBLE PRECISION,
    c_dec       DECIMAL(38,9),
    c_numeric   NUMERIC,
    c_text      TEXT,
    c_varchar   VARCHAR(255),
    c_blob      BLOB,
    c_bool      BOOLEAN,
    c_date      DATE,
    c_time      TIME,
    c_ts        TIMESTAMP,
    c_tstz      TIMESTAMP WITH TIME ZONE,
    c_datetime  DATETIME,
    c_json      JSON,
    c_uuid      UUID,
    c_any,
    c_text_nn   TEXT NOT NULL DEFAULT ''
);
"#;

fn t(s: &str) -> V {
    V::Text(s.to_string())
}

fn b(bytes: &[u8]) -> V {
    V::Blob(bytes.to_vec())
}

const DECIMALS: &[&str] = &[
    "12345678901234567890.123456789",
    "-0.000000000000000000001",
    "0.00",
    "1.10",
    "99999999999999999999999999999.999999999",
    "-42",
    "not a number",
    "",
];

/// Every column's values; row `i` takes value `i % len` of each list.
fn value_columns() -> Vec<(&'static str, Vec<V>)> {
    let long_text: String = "Zoë 🐢 مرحبا ".repeat(5000);
    let big_blob: Vec<u8> = (0..200_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let mut texts: Vec<V> = vec![
        t(""),
        t("plain ascii"),
        t("emoji 🐢🚀 and a family 👨‍👩‍👧‍👦 (ZWJ)"),
        t("مرحبا بالعالم — עברית — RTL"),
        t("\u{202e}right-to-left override\u{202c}"),
        t("combining: e\u{301} a\u{308} Z\u{324}\u{354}\u{367}\u{311}\u{343}"),
        t("\u{feff}BOM first, zero\u{200b}width, ZWNJ\u{200c}"),
        t("tab\tnewline\ncarriage\rreturn, \u{1}\u{1f}\u{7f} controls"),
        t("quotes ' \" ` ; -- /* */ and SQL: '); DROP TABLE vals; --"),
        t("NULL"),
        t("\u{10ffff} the last code point, \u{fffd} replacement"),
        t("  leading and trailing spaces  "),
        t("ABCDEF01-2345-6789-ABCD-EF0123456789"),
        t(&long_text),
    ];
    texts.extend(DECIMALS.iter().map(|d| t(d)));
    vec![
        (
            "c_int",
            vec![
                V::Integer(i64::MIN),
                V::Integer(i64::MAX),
                V::Integer(0),
                V::Integer(-1),
                V::Integer(1 << 53 | 1),
                t("abc"),
                V::Real(1.5),
                t("12"),
            ],
        ),
        ("c_bigint", vec![V::Integer(i64::MAX), V::Integer(i64::MIN + 1), V::Integer(-9_007_199_254_740_993), V::Integer(4_294_967_296)]),
        (
            "c_real",
            vec![
                V::Real(0.0),
                V::Real(-0.0),
                V::Real(f64::MIN_POSITIVE),
                V::Real(5e-324),
                V::Real(1e-310),
                V::Real(f64::MAX),
                V::Real(f64::MIN),
                V::Real(0.1),
                V::Real(1.0 / 3.0),
                V::Real(f64::INFINITY),
                V::Real(f64::NEG_INFINITY),
                V::Real(3.0),
                V::Real(-2.5e300),
                V::Real(9_007_199_254_740_993.0),
            ],
        ),
        ("c_double", vec![V::Real(std::f64::consts::PI), V::Real(-1e-300), V::Real(1e308), V::Real(-0.0), V::Integer(7)]),
        ("c_dec", DECIMALS.iter().map(|d| t(d)).chain([V::Real(0.1), V::Integer(i64::MAX)]).collect()),
        ("c_numeric", vec![t("3.14159265358979323846264338327950288"), t("1e400"), t("0x10"), V::Integer(-5), t("12.50")]),
        ("c_text", texts.clone()),
        ("c_varchar", texts.iter().rev().cloned().collect()),
        (
            "c_blob",
            vec![b(&[]), b(&(0..=255).collect::<Vec<u8>>()), b(&[0]), b(&big_blob), b("text as bytes é".as_bytes()), b(&[0xff, 0xfe, 0])],
        ),
        ("c_bool", vec![V::Integer(0), V::Integer(1), V::Integer(2), V::Integer(-1), t("yes"), t("true")]),
        ("c_date", vec![t("2024-02-29"), t("0001-01-01"), t("9999-12-31"), t(""), t("not a date"), t("20240229")]),
        ("c_time", vec![t("23:59:59.999999"), t("00:00"), t("12:00:00+05:30")]),
        (
            "c_ts",
            vec![t("2024-02-29 23:59:59.123456"), t("1970-01-01T00:00:00Z"), t("2024-02-29T23:59:59+05:30"), V::Integer(1_700_000_000)],
        ),
        ("c_tstz", vec![t("2024-02-29T23:59:59.999999+14:00"), t("2024-01-01 00:00:00-12:00")]),
        ("c_datetime", vec![t("2038-01-19 03:14:08"), t("1900-01-01 00:00:00")]),
        (
            "c_json",
            vec![
                t("{}"),
                t("[]"),
                t(r#"{"a":[1,2,{"b":null}],"ü":"🐢","big":9223372036854775807,"esc":"line\nbreak \"q\" \\"}"#),
                t("123"),
                t("\"a string\""),
                t("null"),
                t("1.5"),
                t("true"),
                t(""),
            ],
        ),
        (
            "c_uuid",
            vec![t("0f8fad5b-d9cb-469f-a165-70867728950e"), t("7C9E6679-7425-40DE-944B-E07FC1F90AE7"), t("not-a-uuid"), b(&[0x11; 16])],
        ),
        (
            "c_any",
            vec![
                V::Integer(42),
                V::Real(-0.0),
                t("12"),
                b(&[1, 2, 3]),
                V::Real(1.5),
                t(""),
                b(&[]),
                V::Integer(i64::MIN),
                t("12345678901234567890.123456789"),
                V::Real(f64::INFINITY),
            ],
        ),
        ("c_text_nn", vec![t(""), t("x"), t("ü")]),
    ]
}

/// Builds the value-type database: org 1 (the one exported) and org 2 in the source, other rows in
/// the target so that keys must change.
fn value_dbs(w: &Work) -> (std::path::PathBuf, std::path::PathBuf, usize) {
    let src = w.db("values-src.db", VALUE_SCHEMA);
    let tgt = w.db("values-tgt.db", VALUE_SCHEMA);
    let columns = value_columns();
    let rows = columns.iter().map(|(_, v)| v.len()).max().unwrap_or(0) + 1;
    let names: Vec<&str> = columns.iter().map(|(c, _)| *c).collect();
    let insert = format!(
        "INSERT INTO vals (id, org_id, seq, {}) VALUES (?1, ?2, ?3, {})",
        names.join(", "),
        (4..4 + names.len()).map(|i| format!("?{i}")).collect::<Vec<_>>().join(", ")
    );
    {
        let conn = open(&src);
        conn.execute(
            "INSERT INTO orgs VALUES (1, 'Org ✓ one', x'00ff00', '{\"theme\":\"dark\",\"n\":[1,2.5]}', '12345678901234567890.1234', '2024-02-29 12:00:00')",
            [],
        )
        .unwrap();
        conn.execute("INSERT INTO orgs VALUES (2, 'Other', NULL, NULL, NULL, NULL)", []).unwrap();
        let mut stmt = conn.prepare(&insert).unwrap();
        for i in 0..rows {
            let mut params: Vec<V> = vec![V::Integer(10 + i as i64), V::Integer(1), V::Integer(i as i64)];
            for (c, vals) in &columns {
                // The last row is all NULL where the column allows it.
                params.push(if i == rows - 1 {
                    if *c == "c_text_nn" {
                        t("")
                    } else {
                        V::Null
                    }
                } else {
                    vals[i % vals.len()].clone()
                });
            }
            stmt.execute(rusqlite::params_from_iter(params)).unwrap();
        }
        // Org 2's rows must not travel.
        for i in 0..3 {
            let mut params: Vec<V> = vec![V::Integer(1000 + i), V::Integer(2), V::Integer(i)];
            for (_, vals) in &columns {
                params.push(vals[(i as usize + 1) % vals.len()].clone());
            }
            stmt.execute(rusqlite::params_from_iter(params)).unwrap();
        }
    }
    {
        let conn = open(&tgt);
        conn.execute("INSERT INTO orgs VALUES (1, 'Target org', NULL, '{}', '0', NULL)", []).unwrap();
        let mut stmt = conn.prepare(&insert).unwrap();
        for i in 0..5i64 {
            let mut params: Vec<V> = vec![V::Integer(10 + i), V::Integer(1), V::Integer(i)];
            for (_, vals) in &columns {
                params.push(vals[(i as usize + 2) % vals.len()].clone());
            }
            stmt.execute(rusqlite::params_from_iter(params)).unwrap();
        }
    }
    (src, tgt, rows)
}

fn value_specs() -> Vec<TableSpec> {
    vec![
        spec("orgs", "SELECT * FROM orgs WHERE id = ?1").fresh(&["id"]),
        spec("vals", "SELECT * FROM vals WHERE org_id = ?1").fresh(&["id"]).reference(&["org_id"], "orgs", &["id"]).pair_by(&["seq"]),
    ]
}

#[test]
fn every_value_type_round_trips_exactly_storage_class_included() {
    let w = Work::new();
    let (src, tgt, nrows) = value_dbs(&w);
    let archive = w.path("values.orgport");
    w.export(&src, None, Some("orgs"), &["1"], &[], &archive).ok();
    let before = snapshot(&tgt);
    let report = w.import_json(&tgt, None, &archive);
    let org = new_org(&report);
    assert_ne!(org, "1", "the target already has org 1: the import must allocate a new key");
    w.verify(&tgt, None, &archive, &[&org]).ok();

    let paired = assert_org_equal(&src, &Cell::Int(1), &tgt, &Cell::Int(org.parse().unwrap()), &value_specs());
    assert_eq!(paired.pairs["vals"].len(), nrows);
    assert!(paired.cuts.is_empty(), "nothing should be cut: {:?}", paired.cuts);
    let added = assert_only_added(&before, &snapshot(&tgt));
    assert_added_exactly(&added, &paired, &[]);

    // The comparison is only as good as the source: make sure the hard values are really there,
    // stored as intended, and arrived as such.
    let vals_src = paired.source_rows("vals");
    let vals_tgt = paired.target_rows("vals");
    let has = |rows: &[Row], col: &str, cell: &Cell| rows.iter().any(|r| &r[paired.col("vals", col)] == cell);
    let must: Vec<(&str, Cell)> = vec![
        ("c_int", Cell::Int(i64::MIN)),
        ("c_int", Cell::Int(i64::MAX)),
        ("c_int", Cell::text("abc")),
        ("c_int", Cell::real(1.5)),
        ("c_real", Cell::real(5e-324)),
        ("c_real", Cell::real(f64::MAX)),
        ("c_real", Cell::real(f64::NEG_INFINITY)),
        ("c_real", Cell::real(0.1)),
        ("c_any", Cell::real(-0.0)),
        ("c_any", Cell::text("12")),
        ("c_any", Cell::Blob(vec![])),
        ("c_any", Cell::text("12345678901234567890.123456789")),
        ("c_text", Cell::text("")),
        ("c_text", Cell::Null),
        ("c_text", Cell::text("emoji 🐢🚀 and a family 👨‍👩‍👧‍👦 (ZWJ)")),
        ("c_text", Cell::text("combining: e\u{301} a\u{308} Z\u{324}\u{354}\u{367}\u{311}\u{343}")),
        ("c_text", Cell::text("12345678901234567890.123456789")),
        ("c_blob", Cell::Blob(vec![])),
        ("c_blob", Cell::Blob((0..=255).collect())),
        ("c_blob", Cell::Null),
        ("c_bool", Cell::Int(0)),
        ("c_bool", Cell::Int(1)),
        ("c_bool", Cell::Int(2)),
        ("c_json", Cell::text("{}")),
        ("c_json", Cell::Int(123)),
        ("c_uuid", Cell::text("7C9E6679-7425-40DE-944B-E07FC1F90AE7")),
        ("c_uuid", Cell::Blob(vec![0x11; 16])),
        ("c_date", Cell::text("2024-02-29")),
        ("c_text_nn", Cell::text("")),
    ];
    for (col, cell) in &must {
        assert!(has(&vals_src, col, cell), "test setup: the source has no {cell:?} in {col}");
        assert!(has(&vals_tgt, col, cell), "the target has no {cell:?} in {col}");
    }
    // Every storage class in the untyped column, on both sides.
    let classes =
        |rows: &[Row]| -> BTreeSet<&'static str> { rows.iter().map(|r| r[paired.col("vals", "c_any")].storage_class()).collect() };
    assert_eq!(classes(&vals_src).len(), 5);
    assert_eq!(classes(&vals_src), classes(&vals_tgt));
    // typeof() as SQLite reports it, column by column, for the whole organisation.
    let typeofs = |db: &std::path::Path, org: i64| -> Vec<Row> {
        let cols: Vec<String> = value_columns().iter().map(|(c, _)| format!("typeof({c})")).collect();
        rows(&open(db), &format!("SELECT seq, {} FROM vals WHERE org_id = ?1 ORDER BY seq", cols.join(", ")), &[&org])
    };
    assert_eq!(typeofs(&src, 1), typeofs(&tgt, org.parse().unwrap()));
    // The root row came across too.
    let root_t = &paired.pairs["orgs"][0].1;
    assert_eq!(root_t[paired.col("orgs", "logo")], Cell::Blob(vec![0, 0xff, 0]));
}

#[test]
fn example_org_into_a_non_empty_target_field_by_field() {
    let w = Work::new();
    let (src, tgt) = example_pair(&w);
    let config = example_config();
    let archive = w.path("org-1.orgport");
    let src_bytes = bytes(&src);
    let out = w.export(&src, Some(&config), None, &["1"], &[], &archive);
    out.ok();
    assert_same_bytes(&src, &src_bytes);

    // The excluded table is not in the archive; the unrelated one neither.
    let manifest = w.manifest(&archive);
    let tables: BTreeSet<String> = manifest["tables"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap().to_string()).collect();
    assert!(!tables.contains("audit_events"), "excluded table in the archive: {tables:?}");
    assert!(!tables.contains("search_cache"), "unrelated table in the archive: {tables:?}");
    for t in ["workspaces", "projects", "tasks", "labels", "task_labels", "users", "plans", "memberships", "event-log"] {
        assert!(tables.contains(t), "`{t}` missing from the archive: {tables:?}");
    }
    let (_, decoded) = archive_rows(&archive);
    assert!(!decoded.contains_key("audit_events"));

    let before = snapshot(&tgt);
    let users_before: BTreeMap<String, Row> = {
        let (_, rows) = query(&open(&tgt), "SELECT email, id, password_hash, otp_secret FROM users", &[]);
        rows.into_iter().map(|r| (r[0].as_str().to_string(), r)).collect()
    };
    let report = w.import_json(&tgt, Some(&config), &archive);
    let org = new_org(&report);
    assert!(!["1", "100", "101"].contains(&org.as_str()), "new key {org} is taken");
    assert_eq!(report["dry_run"], false);
    let v = w.verify(&tgt, Some(&config), &archive, &[&org]);
    v.ok();
    assert!(v.stdout.contains("verified"), "{}", v.stdout);

    let org_cell = Cell::Int(org.parse().unwrap());
    let paired = assert_org_equal(&src, &Cell::Int(1), &tgt, &org_cell, &example_specs());
    assert!(paired.cuts.is_empty(), "org 1 has no cross-tenant reference: {:?}", paired.cuts);

    // Users: matched by e-mail when the target has them (same row, untouched), created otherwise.
    let conn_s = open(&src);
    let src_users: BTreeMap<String, Row> = {
        let (_, rows) = query(&conn_s, "SELECT email, id, password_hash, otp_secret, display_name, created_at FROM users", &[]);
        rows.into_iter().map(|r| (r[0].as_str().to_string(), r)).collect()
    };
    let all_source_hashes: BTreeSet<&str> = src_users.values().map(|r| r[2].as_str()).collect();
    let conn_t = open(&tgt);
    let (mut matched, mut created) = (0, 0);
    for (s, t) in &paired.pairs["users"] {
        let email = s[paired.col("users", "email")].as_str();
        let t_id = &t[paired.col("users", "id")];
        let t_row =
            &rows(&conn_t, "SELECT email, id, password_hash, otp_secret, display_name, created_at FROM users WHERE id = ?1", &[t_id])[0];
        match users_before.get(email) {
            Some(old) => {
                matched += 1;
                assert_eq!(&old[1], t_id, "user {email} must be matched to the target's own row");
                assert_eq!(&old[2], &t_row[2], "a matched user's password hash is the target's");
            }
            None => {
                created += 1;
                let hash = &t_row[2];
                let Cell::Text(h) = hash else { panic!("created user {email}: password_hash {hash:?} is not text") };
                assert!(!h.is_empty(), "created user {email}: empty password hash");
                assert!(!all_source_hashes.contains(h.as_str()), "created user {email} got a source password hash");
                assert!(!h.starts_with("$argon2"), "created user {email}: the withheld hash looks usable: {h}");
                assert_eq!(t_row[3], Cell::Null, "created user {email}: a withheld nullable secret becomes NULL");
                let src_row = &src_users[email];
                assert_eq!(t_row[4], src_row[4], "created user {email}: display_name");
                assert_eq!(t_row[5], src_row[5], "created user {email}: created_at");
            }
        }
    }
    assert!(matched > 0 && created > 0, "test setup: want both matched ({matched}) and created ({created}) users");
    assert_eq!(report["tables"]["users"]["matched"], matched);
    assert_eq!(report["tables"]["users"]["created"], created);
    let dupes = count(&conn_t, "SELECT count(*) FROM (SELECT email FROM users GROUP BY email HAVING count(*) > 1)", &[]);
    assert_eq!(dupes, 0, "duplicate users on the target");

    // Other organisations, users, plans, audit events: unchanged; nothing but the new org added.
    let added = assert_only_added(&before, &snapshot(&tgt));
    assert_added_exactly(&added, &paired, &[("users", created)]);
    for (table, counts) in report["tables"].as_object().unwrap() {
        if table == "users" || table == "plans" {
            continue;
        }
        assert_eq!(counts["created"].as_u64().unwrap() as usize, paired.pairs[table].len(), "report count for `{table}`");
    }
}

#[test]
fn the_same_archive_imported_twice_gives_two_independent_orgs() {
    let w = Work::new();
    let (src, tgt) = example_pair(&w);
    let config = example_config();
    let archive = w.path("org-1.orgport");
    w.export(&src, Some(&config), None, &["1"], &[], &archive).ok();

    let first = new_org(&w.import_json(&tgt, Some(&config), &archive));
    let between = snapshot(&tgt);
    let report2 = w.import_json(&tgt, Some(&config), &archive);
    let second = new_org(&report2);
    assert_ne!(first, second, "two imports must give two organisations");
    // Both verify, each against the same archive.
    w.verify(&tgt, Some(&config), &archive, &[&first]).ok();
    w.verify(&tgt, Some(&config), &archive, &[&second]).ok();

    // The second copy's unique values give way: the slug is suffixed, gift card codes are
    // regenerated (examples/saas/orgport.toml); both are checked below.
    let specs = with_spec(example_specs(), example_spec("workspaces").ignore(&["slug"]));
    let specs = with_spec(specs, example_spec("gift_cards").ignore(&["code"]).pair_by(&["amount_cents"]));
    let p1 = assert_org_equal(&src, &Cell::Int(1), &tgt, &Cell::Int(first.parse().unwrap()), &example_specs());
    let p2 = assert_org_equal(&src, &Cell::Int(1), &tgt, &Cell::Int(second.parse().unwrap()), &specs);
    let conn = open(&tgt);
    let slug = |k: &str| one(&conn, "SELECT slug FROM workspaces WHERE id = ?1", &[&k.parse::<i64>().unwrap()]);
    assert_eq!(slug(&first), Cell::text("ws-1"));
    assert_eq!(slug(&second), Cell::text("ws-1-2"));
    let renamed = report2["renamed"].as_array().unwrap();
    assert!(
        renamed.iter().any(|r| r["table"] == "workspaces"
            && r["column"] == "slug"
            && (r["from"] == "ws-1" || r["from"] == "\"ws-1\"")
            && (r["to"] == "ws-1-2" || r["to"] == "\"ws-1-2\"")),
        "the slug rename is reported: {renamed:?}"
    );

    let code = p1.col("gift_cards", "code");
    for ((s1, t1), (s2, t2)) in p1.pairs["gift_cards"].iter().zip(&p2.pairs["gift_cards"]) {
        assert_eq!(s1, s2);
        assert_eq!(t1[code], s1[code], "the first copy keeps its code");
        assert_ne!(t2[code], s2[code], "the second copy's code must be regenerated");
    }
    // Independent: no owned row shared, every new key different.
    for table in ["projects", "tasks", "attachments", "gift_cards", "redemptions", "api_tokens"] {
        let id = p1.col(table, "id");
        let k1: BTreeSet<Cell> = p1.target_rows(table).iter().map(|r| r[id].clone()).collect();
        let k2: BTreeSet<Cell> = p2.target_rows(table).iter().map(|r| r[id].clone()).collect();
        assert_eq!(k1.len(), p1.pairs[table].len());
        assert!(k1.is_disjoint(&k2), "`{table}`: the two imports share keys");
    }
    // The users are shared: the second import matched what the first created.
    assert_eq!(report2["tables"]["users"]["created"], 0, "{report2}");
    let users1: BTreeSet<Cell> = p1.target_rows("users").iter().map(|r| r[0].clone()).collect();
    let users2: BTreeSet<Cell> = p2.target_rows("users").iter().map(|r| r[0].clone()).collect();
    assert_eq!(users1, users2);
    // The second import changed nothing of the first, nor of anyone else.
    let added = assert_only_added(&between, &snapshot(&tgt));
    assert_added_exactly(&added, &p2, &[("users", 0)]);
}

#[test]
fn several_orgs_in_one_archive_become_several_new_orgs() {
    let w = Work::new();
    let (src, tgt) = example_pair(&w);
    let config = example_config();
    let archive = w.path("orgs-1-2.orgport");
    w.export(&src, Some(&config), None, &["1", "2"], &[], &archive).ok();
    let before = snapshot(&tgt);
    let report = w.import_json(&tgt, Some(&config), &archive);
    let orgs = report["orgs"].as_array().unwrap();
    assert_eq!(orgs.len(), 2, "{report}");
    assert_eq!(orgs[0]["source"], 1);
    assert_eq!(orgs[1]["source"], 2);
    let n1 = json_key(&orgs[0]["target"]);
    let n2 = json_key(&orgs[1]["target"]);
    assert_ne!(n1, n2);
    w.verify(&tgt, Some(&config), &archive, &[&n1, &n2]).ok();

    let p1 = assert_org_equal(&src, &Cell::Int(1), &tgt, &Cell::Int(n1.parse().unwrap()), &example_specs());
    // Org 2 redeems a gift card of org 1: both travelled, so the reference must follow to the
    // new org 1's card (checked below), not be cut.
    let specs2 = with_spec(example_specs(), example_spec("redemptions").ignore(&["gift_card_id"]));
    let p2 = assert_org_equal(&src, &Cell::Int(2), &tgt, &Cell::Int(n2.parse().unwrap()), &specs2);
    let conn_s = open(&src);
    let conn_t = open(&tgt);
    let code_of = |conn: &rusqlite::Connection, id: &Cell| -> Cell {
        if id.is_null() {
            Cell::Null
        } else {
            one(conn, "SELECT code FROM gift_cards WHERE id = ?1", &[id])
        }
    };
    let card = p2.col("redemptions", "gift_card_id");
    let mut crossing = 0;
    for (s, t) in &p2.pairs["redemptions"] {
        assert_eq!(code_of(&conn_s, &s[card]), code_of(&conn_t, &t[card]), "redemption {s:?} → {t:?}");
        if !s[card].is_null() {
            let owner_s = one(&conn_s, "SELECT workspace_id FROM gift_cards WHERE id = ?1", &[&s[card]]);
            let owner_t = one(&conn_t, "SELECT workspace_id FROM gift_cards WHERE id = ?1", &[&t[card]]);
            let expected = if owner_s == Cell::Int(1) { &n1 } else { &n2 };
            assert_eq!(owner_t, Cell::Int(expected.parse().unwrap()), "redemption {s:?}: the card's new owner");
            crossing += usize::from(owner_s == Cell::Int(1));
        }
    }
    assert_eq!(crossing, 1, "test setup: org 2 redeems one card of org 1");
    let added = assert_only_added(&before, &snapshot(&tgt));
    for (table, rows) in &added {
        if table == "users" {
            continue;
        }
        let expected = p1.pairs.get(table).map_or(0, Vec::len) + p2.pairs.get(table).map_or(0, Vec::len);
        assert_eq!(rows.len(), expected, "`{table}`: rows added for the two organisations");
    }
}

#[test]
fn dry_run_reports_the_import_and_leaves_the_file_byte_identical() {
    let w = Work::new();
    let (src, tgt) = example_pair(&w);
    let config = example_config();
    let archive = w.path("org-2.orgport");
    w.export(&src, Some(&config), None, &["2"], &[], &archive).ok();
    let before = bytes(&tgt);
    let listing = dir_listing(w.dir.path());

    let dry = w.import(&tgt, Some(&config), &archive, &["--dry-run", "--json"]);
    dry.ok();
    let dry = dry.json();
    assert_eq!(dry["dry_run"], true);
    assert_same_bytes(&tgt, &before);
    assert_eq!(dir_listing(w.dir.path()), listing, "a dry run leaves no file behind");
    let text = w.import(&tgt, Some(&config), &archive, &["--dry-run"]);
    text.ok();
    assert!(text.stdout.contains("would import") && text.stdout.contains("nothing was written"), "{}", text.stdout);
    assert_same_bytes(&tgt, &before);

    // The real import does what the dry run announced.
    let real = w.import_json(&tgt, Some(&config), &archive);
    assert_eq!(real["orgs"], dry["orgs"], "the dry run announced another key");
    assert_eq!(real["tables"], dry["tables"]);
    assert_eq!(real["cut"], dry["cut"]);
    assert_eq!(real["dry_run"], false);
    w.verify(&tgt, Some(&config), &archive, &[&new_org(&real)]).ok();
}

/// `verify` is only worth something if it notices small differences: a storage class, the sign
/// of zero, an empty value turned NULL, one unit in the last place.
#[test]
fn verify_notices_a_changed_storage_class_sign_or_last_bit() {
    let w = Work::new();
    let (src, tgt, _) = value_dbs(&w);
    let archive = w.path("values.orgport");
    w.export(&src, None, Some("orgs"), &["1"], &[], &archive).ok();
    let org = new_org(&w.import_json(&tgt, None, &archive));
    w.verify(&tgt, None, &archive, &[&org]).ok();
    let k: i64 = org.parse().unwrap();
    let conn = open(&tgt);
    let seq_of = |col: &str, cell: &Cell| -> i64 {
        let r = rows(&conn, &format!("SELECT seq, {col} FROM vals WHERE org_id = ?1 ORDER BY seq"), &[&k]);
        r.iter().find(|row| &row[1] == cell).unwrap_or_else(|| panic!("no {cell:?} in {col}"))[0].as_i64()
    };
    let next_up = f64::from_bits(0.1f64.to_bits() + 1);
    let tampers: Vec<(&str, String, Cell)> = vec![
        ("integer to text", "c_any".into(), Cell::Int(42)),
        ("-0.0 to 0.0", "c_any".into(), Cell::real(-0.0)),
        ("empty blob to NULL", "c_blob".into(), Cell::Blob(vec![])),
        ("empty text to NULL", "c_text".into(), Cell::text("")),
        ("one ulp", "c_real".into(), Cell::real(0.1)),
    ];
    for (i, (what, col, cell)) in tampers.iter().enumerate() {
        let seq = seq_of(col, cell);
        let copy = w.copy(&tgt, &format!("tampered-{i}.db"));
        let new_value: Cell = match *what {
            "integer to text" => Cell::text("42"),
            "-0.0 to 0.0" => Cell::real(0.0),
            "one ulp" => Cell::real(next_up),
            _ => Cell::Null,
        };
        let changed = open(&copy)
            .execute(&format!("UPDATE vals SET {col} = ?1 WHERE org_id = ?2 AND seq = ?3"), rusqlite::params![new_value, k, seq])
            .unwrap();
        assert_eq!(changed, 1);
        let after = one(&open(&copy), &format!("SELECT {col} FROM vals WHERE org_id = ?1 AND seq = ?2"), &[&k, &seq]);
        assert_eq!(after, new_value, "test setup: {what}");
        let out = w.verify(&copy, None, &archive, &[&org]);
        assert_eq!(out.code, 1, "verify missed a change ({what}) in {col}:\n{}", out.stdout);
        assert!(out.stdout.contains("vals"), "{what}: {}", out.stdout);
    }
}

/// Users have `AUTOINCREMENT` keys: a created user never takes a key that was used before, even
/// one whose row is gone.
#[test]
fn autoincrement_keys_are_never_reused() {
    let w = Work::new();
    let (src, tgt) = example_pair(&w);
    let config = example_config();
    let conn = open(&tgt);
    let top = one(&conn, "SELECT max(id) FROM users", &[]);
    conn.execute_batch(&format!(
        "DELETE FROM otp_devices WHERE user_id = {0}; DELETE FROM memberships WHERE user_id = {0};
         UPDATE tasks SET assignee_id = NULL WHERE assignee_id = {0}; UPDATE api_tokens SET created_by = NULL WHERE created_by = {0};
         DELETE FROM users WHERE id = {0};",
        top.as_i64()
    ))
    .unwrap();
    let seq = one(&conn, "SELECT seq FROM sqlite_sequence WHERE name = 'users'", &[]).as_i64();
    assert_eq!(seq, top.as_i64(), "test setup: the sequence remembers the deleted key");
    let archive = w.path("org-1.orgport");
    w.export(&src, Some(&config), None, &["1"], &[], &archive).ok();
    let before = snapshot(&tgt);
    let report = w.import_json(&tgt, Some(&config), &archive);
    let added = assert_only_added(&before, &snapshot(&tgt));
    assert!(!added["users"].is_empty(), "test setup: users created");
    assert_eq!(report["tables"]["users"]["created"], added["users"].len());
    for u in &added["users"] {
        assert!(u[0].as_i64() > seq, "created user {u:?} reuses a key at or below the sequence ({seq})");
    }
    w.verify(&tgt, Some(&config), &archive, &[&new_org(&report)]).ok();
}

/// A target with more columns than the archive (nullable or with a default) takes the archive;
/// the extra columns get their defaults.
#[test]
fn a_target_with_extra_columns_takes_the_archive_with_defaults() {
    let w = Work::new();
    let (src, tgt) = example_pair(&w);
    let config = example_config();
    open(&tgt)
        .execute_batch("ALTER TABLE projects ADD COLUMN color TEXT NOT NULL DEFAULT 'blue'; ALTER TABLE tasks ADD COLUMN note TEXT;")
        .unwrap();
    let archive = w.path("org-1.orgport");
    w.export(&src, Some(&config), None, &["1"], &[], &archive).ok();
    let report = w.import_json(&tgt, Some(&config), &archive);
    let org: i64 = new_org(&report).parse().unwrap();
    w.verify(&tgt, Some(&config), &archive, &[&org.to_string()]).ok();
    let conn = open(&tgt);
    let colors = rows(&conn, "SELECT DISTINCT color FROM projects WHERE workspace_id = ?1", &[&org]);
    assert_eq!(colors, vec![vec![Cell::text("blue")]]);
    let notes = count(
        &conn,
        "SELECT count(*) FROM tasks t JOIN projects p ON p.id = t.project_id WHERE p.workspace_id = ?1 AND t.note IS NOT NULL",
        &[&org],
    );
    assert_eq!(notes, 0);
    // Everything else equals the source; the extra columns are the target's own.
    let specs = with_spec(example_specs(), example_spec("projects").ignore(&["color"]));
    let specs = with_spec(specs, example_spec("tasks").ignore(&["note"]));
    let src_copy = w.copy(&src, "source-with-columns.db");
    open(&src_copy).execute_batch("ALTER TABLE projects ADD COLUMN color TEXT; ALTER TABLE tasks ADD COLUMN note TEXT;").unwrap();
    assert_org_equal(&src_copy, &Cell::Int(1), &tgt, &Cell::Int(org), &specs);
}
