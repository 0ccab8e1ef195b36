//! Sensitive groups (withheld by default, included with `--with`) and `on_conflict` policies,
//! plus kept lookup rows that the target lacks.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use orgport_core::value::Value;
use orgport_testkit::example::ExampleOptions;

use crate::util::*;

/// The example configuration without its `[on_conflict]` section: every conflict fails.
fn config_without_policies() -> String {
    let text = example_config_text();
    let start = text.find("[on_conflict]").expect("an [on_conflict] section");
    let end = text[start..].find("[[reference]]").map(|i| start + i).expect("a [[reference]] after it");
    let out = format!("{}{}", &text[..start], &text[end..]);
    let settings = out.lines().filter(|l| !l.trim_start().starts_with('#'));
    assert!(settings.clone().all(|l| !l.contains("suffix") && !l.contains("regenerate")), "{out}");
    out
}

fn source(w: &Work) -> PathBuf {
    w.example("source.db", &ExampleOptions { tasks_per_project: 6, ..ExampleOptions::default() })
}

fn target(w: &Work) -> PathBuf {
    w.example(
        "target.db",
        &ExampleOptions { orgs: 2, first_org: 100, seed: 7, users: 5, tasks_per_project: 4, ..ExampleOptions::default() },
    )
}

/// Every secret of the source: password hashes, OTP secrets, OTP device secrets, API tokens.
fn source_secrets(src: &Path) -> BTreeSet<String> {
    let conn = open(src);
    let mut out = BTreeSet::new();
    for sql in [
        "SELECT password_hash FROM users",
        "SELECT otp_secret FROM users WHERE otp_secret <> ''",
        "SELECT secret FROM otp_devices",
        "SELECT token FROM api_tokens",
    ] {
        for r in rows(&conn, sql, &[]) {
            out.insert(r[0].as_str().to_string());
        }
    }
    out
}

fn contains_bytes(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn a_default_export_withholds_passwords_otp_and_tokens() {
    let w = Work::new();
    let src = source(&w);
    let archive = w.path("org-1.orgport");
    let out = w.export(&src, Some(&example_config()), None, &["1"], &[], &archive);
    out.ok();
    for f in ["users.password_hash (passwords)", "users.otp_secret (otp)", "api_tokens.token (secrets)"] {
        assert!(out.stderr.contains(f), "export does not say {f} was withheld:\n{}", out.stderr);
    }

    let m = w.manifest(&archive);
    assert_eq!(m["with_groups"], serde_json::json!([]));
    let tables: BTreeMap<String, serde_json::Value> =
        m["tables"].as_array().unwrap().iter().map(|t| (t["name"].as_str().unwrap().to_string(), t.clone())).collect();
    assert_eq!(tables["users"]["withheld"], serde_json::json!({"otp_secret": "otp", "password_hash": "passwords"}));
    assert_eq!(tables["api_tokens"]["withheld"], serde_json::json!({"token": "secrets"}));
    let user_cols: Vec<&str> = tables["users"]["columns"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert!(!user_cols.contains(&"password_hash") && !user_cols.contains(&"otp_secret"), "{user_cols:?}");
    assert!(!tables.contains_key("otp_devices"), "the otp group's table travelled without `--with otp`");

    let secrets = source_secrets(&src);
    assert!(secrets.len() > 20, "test setup: secrets to look for");
    let raw = bytes(&archive);
    for s in &secrets {
        assert!(!contains_bytes(&raw, s.as_bytes()), "the archive file contains the secret {s}");
    }
    let (_, decoded) = archive_rows(&archive);
    assert!(decoded["users"].len() >= 2, "test setup: users in the archive");
    for (table, rows) in &decoded {
        for row in rows {
            for v in row {
                if let Some(s) = v.as_str() {
                    assert!(!secrets.contains(s), "`{table}` carries the secret {s} in the archive");
                    assert!(!s.starts_with("$argon2"), "`{table}` carries a password hash in the archive");
                }
            }
        }
    }
}

/// Finds an organisation of the source that has members with OTP devices both among the
/// target's users (matched) and not (created).
fn org_with_matched_and_created_otp_users(src: &Path, tgt: &Path) -> (i64, Vec<String>, Vec<String>) {
    let target_emails: BTreeSet<String> =
        rows(&open(tgt), "SELECT email FROM users", &[]).into_iter().map(|r| r[0].as_str().to_string()).collect();
    let conn = open(src);
    for org in 1..=3i64 {
        let with_devices: Vec<String> = rows(
            &conn,
            "SELECT DISTINCT u.email FROM users u JOIN otp_devices d ON d.user_id = u.id WHERE u.id IN \
             (SELECT user_id FROM memberships WHERE workspace_id = ?1 \
              UNION SELECT assignee_id FROM tasks WHERE project_id IN (SELECT id FROM projects WHERE workspace_id = ?1) \
              UNION SELECT created_by FROM api_tokens WHERE workspace_id = ?1) ORDER BY 1",
            &[&org],
        )
        .into_iter()
        .map(|r| r[0].as_str().to_string())
        .collect();
        let (matched, created): (Vec<String>, Vec<String>) = with_devices.into_iter().partition(|e| target_emails.contains(e));
        if !matched.is_empty() && !created.is_empty() {
            return (org, matched, created);
        }
    }
    panic!("test setup: no organisation has OTP users both on and off the target");
}

#[test]
fn with_passwords_and_otp_the_secrets_travel_and_otp_devices_come_only_for_created_users() {
    let w = Work::new();
    // Seed 5 and a target pool of 7 users: workspace 1 has OTP users on the target (user003,
    // user006) and off it (user012).
    let src = w.example("source.db", &ExampleOptions { seed: 5, tasks_per_project: 6, ..ExampleOptions::default() });
    let tgt = w.example(
        "target.db",
        &ExampleOptions { orgs: 2, first_org: 100, seed: 7, users: 7, tasks_per_project: 4, ..ExampleOptions::default() },
    );
    let config = example_config();
    let (org, matched_emails, created_emails) = org_with_matched_and_created_otp_users(&src, &tgt);
    let archive = w.path("with-secrets.orgport");
    let out = w.export(&src, Some(&config), None, &[&org.to_string()], &["--with", "passwords,otp"], &archive);
    out.ok();
    assert!(!out.stderr.contains("password_hash (passwords)"), "{}", out.stderr);

    let m = w.manifest(&archive);
    assert_eq!(m["with_groups"], serde_json::json!(["otp", "passwords"]));
    let (_, decoded) = archive_rows(&archive);
    let users_t = m["tables"].as_array().unwrap().iter().find(|t| t["name"] == "users").unwrap();
    assert_eq!(users_t["withheld"], serde_json::json!({}));
    assert!(decoded.contains_key("otp_devices"), "otp_devices must travel with `--with otp`");
    // The archive carries the real hashes now.
    let hash_col = users_t["columns"].as_array().unwrap().iter().position(|c| c["name"] == "password_hash").unwrap();
    let src_conn = open(&src);
    for row in &decoded["users"] {
        let Value::Text(h) = &row[hash_col] else { panic!("password_hash is {:?}", row[hash_col]) };
        assert_eq!(count(&src_conn, "SELECT count(*) FROM users WHERE password_hash = ?1", &[h]), 1);
    }

    let before = snapshot(&tgt);
    let users_before: BTreeMap<String, Row> = rows(&open(&tgt), "SELECT email, id, password_hash, otp_secret FROM users", &[])
        .into_iter()
        .map(|r| (r[0].as_str().to_string(), r))
        .collect();
    let report = w.import_json(&tgt, Some(&config), &archive);
    let new = new_org(&report);
    w.verify(&tgt, Some(&config), &archive, &[&new]).ok();
    let paired = assert_org_equal(&src, &Cell::Int(org), &tgt, &Cell::Int(new.parse().unwrap()), &example_specs());

    let tgt_conn = open(&tgt);
    let user_row = |conn: &rusqlite::Connection, email: &str| {
        rows(conn, "SELECT id, password_hash, otp_secret FROM users WHERE email = ?1", &[&email])
    };
    let mut created_users = 0;
    for (s, _) in &paired.pairs["users"] {
        let email = s[paired.col("users", "email")].as_str();
        let src_u = &user_row(&src_conn, email)[0];
        let tgt_u = user_row(&tgt_conn, email);
        assert_eq!(tgt_u.len(), 1, "user {email} on the target");
        let tgt_u = &tgt_u[0];
        if let Some(old) = users_before.get(email) {
            assert_eq!((&tgt_u[0], &tgt_u[1], &tgt_u[2]), (&old[1], &old[2], &old[3]), "matched user {email} must stay as it was");
        } else {
            created_users += 1;
            assert_eq!(tgt_u[1], src_u[1], "created user {email}: password hash from the archive");
            assert_eq!(tgt_u[2], src_u[2], "created user {email}: OTP secret from the archive ('' and NULL kept apart)");
        }
    }
    assert!(created_users > 0);

    // OTP devices: exactly the created users' devices, with their new user id.
    let added = assert_only_added(&before, &snapshot(&tgt));
    assert_added_exactly(&added, &paired, &[("users", created_users), ("otp_devices", added["otp_devices"].len())]);
    let mut expected_devices: Vec<(String, Cell, Cell)> = Vec::new();
    for email in &created_emails {
        for d in
            rows(&src_conn, "SELECT d.label, d.secret FROM otp_devices d JOIN users u ON u.id = d.user_id WHERE u.email = ?1", &[email])
        {
            expected_devices.push((email.clone(), d[0].clone(), d[1].clone()));
        }
    }
    let mut got_devices: Vec<(String, Cell, Cell)> = added["otp_devices"]
        .iter()
        .map(|d| {
            // otp_devices: id, user_id, label, secret
            let email = one(&tgt_conn, "SELECT email FROM users WHERE id = ?1", &[&d[1]]).as_str().to_string();
            (email, d[2].clone(), d[3].clone())
        })
        .collect();
    expected_devices.sort();
    got_devices.sort();
    assert!(!expected_devices.is_empty());
    assert_eq!(got_devices, expected_devices, "otp_devices created for the created users only");
    for email in &matched_emails {
        assert!(got_devices.iter().all(|(e, _, _)| e != email), "a device was added to the matched user {email}");
    }
    assert_eq!(report["tables"]["otp_devices"]["created"], expected_devices.len());
}

#[test]
fn an_unknown_group_in_with_is_refused_and_writes_nothing() {
    let w = Work::new();
    let src = source(&w);
    let archive = w.path("x.orgport");
    let listing = dir_listing(w.dir.path());
    w.export(&src, Some(&example_config()), None, &["1"], &["--with", "passwords,nosuch"], &archive).fails_with(&[
        "nosuch",
        "passwords",
        "otp",
        "secrets",
    ]);
    assert_eq!(dir_listing(w.dir.path()), listing, "nothing may be left behind");
}

#[test]
fn on_conflict_fail_lists_every_conflict_together_and_changes_nothing() {
    let w = Work::new();
    let src = source(&w);
    let tgt = target(&w);
    let config = w.config("strict.toml", &config_without_policies());
    let archive = w.path("org-1.orgport");
    w.export(&src, Some(&config), None, &["1"], &["--with", "secrets"], &archive).ok();
    w.import_json(&tgt, Some(&config), &archive);
    let before = bytes(&tgt);

    // The second copy collides on the slug, the three gift card codes and the two API tokens.
    let out = w.import(&tgt, Some(&config), &archive, &[]);
    out.fails_with(&["6 unique value(s)", "workspaces", "slug", "ws-1", "gift_cards", "api_tokens", "token", "on_conflict"]);
    let conn = open(&src);
    for code in rows(&conn, "SELECT code FROM gift_cards WHERE workspace_id = 1", &[]) {
        assert!(out.stderr.contains(code[0].as_str()), "the conflict on gift card {:?} is not listed:\n{}", code[0], out.stderr);
    }
    for token in rows(&conn, "SELECT token FROM api_tokens WHERE workspace_id = 1", &[]) {
        assert!(!out.stderr.contains(token[0].as_str()), "a conflict message reveals the secret token:\n{}", out.stderr);
    }
    assert!(out.stderr.contains("sensitive"), "the token conflicts are shown as sensitive values:\n{}", out.stderr);
    assert_same_bytes(&tgt, &before);
    // A dry run finds the same conflicts.
    w.import(&tgt, Some(&config), &archive, &["--dry-run"]).fails_with(&["6 unique value(s)"]);
    assert_same_bytes(&tgt, &before);
}

#[test]
fn on_conflict_suffix_takes_the_next_free_suffix() {
    let w = Work::new();
    let src = source(&w);
    // The target already has a workspace with the slug `ws-1-2`.
    let tgt = w.example(
        "target.db",
        &ExampleOptions { orgs: 1, first_org: 2, slug_prefix: "ws-1-".into(), seed: 7, tasks_per_project: 3, ..ExampleOptions::default() },
    );
    assert_eq!(one(&open(&tgt), "SELECT slug FROM workspaces", &[]), Cell::text("ws-1-2"));
    let config = example_config();
    let archive = w.path("org-1.orgport");
    w.export(&src, Some(&config), None, &["1"], &[], &archive).ok();

    let mut slugs = Vec::new();
    for _ in 0..3 {
        let report = w.import_json(&tgt, Some(&config), &archive);
        let org = new_org(&report);
        w.verify(&tgt, Some(&config), &archive, &[&org]).ok();
        let slug = one(&open(&tgt), "SELECT slug FROM workspaces WHERE id = ?1", &[&org.parse::<i64>().unwrap()]);
        let renamed: Vec<(String, String)> = report["renamed"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["column"] == "slug")
            .map(|r| {
                (
                    r["from"].as_str().unwrap_or("").trim_matches('"').to_string(),
                    r["to"].as_str().unwrap_or("").trim_matches('"').to_string(),
                )
            })
            .collect();
        slugs.push((slug.as_str().to_string(), renamed));
    }
    assert_eq!(slugs[0], ("ws-1".to_string(), vec![]));
    assert_eq!(slugs[1], ("ws-1-3".to_string(), vec![("ws-1".to_string(), "ws-1-3".to_string())]), "ws-1-2 is taken");
    assert_eq!(slugs[2], ("ws-1-4".to_string(), vec![("ws-1".to_string(), "ws-1-4".to_string())]));
    let conn = open(&tgt);
    assert_eq!(count(&conn, "SELECT count(*) - count(DISTINCT slug) FROM workspaces", &[]), 0);
}

/// Same length, different, and every character of the same class (letter, digit, other) as the
/// original's character at that position.
fn same_shape(old: &str, new: &str) -> bool {
    let class = |c: char| {
        if c.is_ascii_lowercase() {
            'a'
        } else if c.is_ascii_uppercase() {
            'A'
        } else if c.is_ascii_digit() {
            '0'
        } else {
            c
        }
    };
    old.chars().count() == new.chars().count() && old.chars().zip(new.chars()).all(|(a, b)| class(a) == class(b))
}

#[test]
fn on_conflict_regenerate_gives_new_unique_values_of_the_same_shape() {
    let w = Work::new();
    let src = source(&w);
    let tgt = target(&w);
    let config = example_config();
    let archive = w.path("org-1.orgport");
    w.export(&src, Some(&config), None, &["1"], &["--with", "secrets"], &archive).ok();

    let first = new_org(&w.import_json(&tgt, Some(&config), &archive));
    let report = w.import_json(&tgt, Some(&config), &archive);
    let second = new_org(&report);
    w.verify(&tgt, Some(&config), &archive, &[&first]).ok();
    w.verify(&tgt, Some(&config), &archive, &[&second]).ok();

    // Tokens travelled (`--with secrets`): compare them too.
    let mut tokens_spec = example_spec("api_tokens");
    tokens_spec.ignore.clear();
    let specs = with_spec(example_specs(), tokens_spec);
    // The first copy carries the codes and tokens unchanged.
    let p1 = assert_org_equal(&src, &Cell::Int(1), &tgt, &Cell::Int(first.parse().unwrap()), &specs);
    assert_eq!(p1.pairs["api_tokens"].len(), 2);
    // The second copy's codes and tokens are regenerated; everything else is equal.
    let specs2 = with_spec(example_specs(), example_spec("workspaces").ignore(&["slug"]));
    let specs2 = with_spec(specs2, example_spec("gift_cards").ignore(&["code"]).pair_by(&["amount_cents"]));
    let p2 = assert_org_equal(&src, &Cell::Int(1), &tgt, &Cell::Int(second.parse().unwrap()), &specs2);
    let conn = open(&tgt);
    for (table, column) in [("gift_cards", "code"), ("api_tokens", "token")] {
        let c = p2.col(table, column);
        for (s, t) in &p2.pairs[table] {
            let (old, new) = (s[c].as_str(), t[c].as_str());
            assert_ne!(old, new, "{table}.{column} must be regenerated");
            assert!(same_shape(old, new), "{table}.{column}: {new:?} is not shaped like {old:?}");
        }
        let dupes = count(&conn, &format!("SELECT count(*) - count(DISTINCT {column}) FROM {table}"), &[]);
        assert_eq!(dupes, 0, "{table}.{column} is not unique any more");
    }
    // Reported, without revealing the secret token.
    let renamed = report["renamed"].as_array().unwrap();
    let tokens: Vec<&serde_json::Value> = renamed.iter().filter(|r| r["table"] == "api_tokens").collect();
    assert_eq!(tokens.len(), 2, "{renamed:?}");
    for r in tokens {
        assert!(r["from"].is_null() && r["to"].is_null(), "a regenerated secret is reported in clear: {r}");
    }
    assert_eq!(renamed.iter().filter(|r| r["table"] == "gift_cards").count(), 3, "{renamed:?}");
}

#[test]
fn a_kept_lookup_row_missing_on_the_target_is_refused_by_name_and_key() {
    let w = Work::new();
    let src = source(&w);
    let tgt = target(&w);
    // Workspace 1 is on plan `free`; the target has no such plan.
    assert_eq!(one(&open(&src), "SELECT plan_id FROM workspaces WHERE id = 1", &[]), Cell::text("free"));
    open(&tgt)
        .execute_batch("UPDATE workspaces SET plan_id = 'team' WHERE plan_id = 'free'; DELETE FROM plans WHERE id = 'free';")
        .unwrap();
    let config = example_config();
    let archive = w.path("org-1.orgport");
    w.export(&src, Some(&config), None, &["1"], &[], &archive).ok();
    let before = bytes(&tgt);
    w.import(&tgt, Some(&config), &archive, &[]).fails_with(&["plans", "free"]);
    assert_same_bytes(&tgt, &before);
    w.import(&tgt, Some(&config), &archive, &["--dry-run"]).fails_with(&["plans", "free"]);
    assert_same_bytes(&tgt, &before);
}

const SECRETIVE_SCHEMA: &str = "
CREATE TABLE accounts (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE integrations (
    id            INTEGER PRIMARY KEY,
    account_id    INTEGER NOT NULL REFERENCES accounts(id),
    label         TEXT NOT NULL,
    api_key       TEXT NOT NULL,
    client_secret BLOB,
    reset_token   TEXT,
    admin_passwd  TEXT NOT NULL,
    otp_seed      INTEGER NOT NULL,
    token_count   INTEGER NOT NULL
);
";

/// Columns that look secret and are not classified are withheld by name (`secrets`,
/// `passwords`, `otp`), flagged by `plan`, and filled on import: NULL where allowed, otherwise a
/// non-empty value that is not the source's. `not_sensitive` keeps a column out of it.
#[test]
fn unclassified_secret_looking_columns_are_withheld_by_name() {
    let w = Work::new();
    let src = w.db(
        "src.db",
        &format!(
            "{SECRETIVE_SCHEMA}
             INSERT INTO accounts VALUES (1, 'acme'), (2, 'other');
             INSERT INTO integrations VALUES (1, 1, 'github', 'AKIA-SOURCE-KEY-1', x'5ec2e7', 'reset-me-1', 'hunter2', 424242, 7),
                                             (2, 1, 'slack', 'AKIA-SOURCE-KEY-2', NULL, NULL, 'correct horse', 737373, 0);"
        ),
    );
    let tgt = w.db("tgt.db", &format!("{SECRETIVE_SCHEMA} INSERT INTO accounts VALUES (1, 'target');"));
    let config = w.config("secretive.toml", "root = \"accounts\"\nnot_sensitive = [\"integrations.token_count\"]\n");

    let plan = w.run(&["plan", "--db", &url(&src), "--config", &config.display().to_string(), "--format", "json"]);
    plan.ok();
    let p = plan.json();
    let integrations = p["tables"].as_array().unwrap().iter().find(|t| t["name"] == "integrations").unwrap().clone();
    assert_eq!(
        integrations["sensitive"],
        serde_json::json!({"admin_passwd": "passwords", "api_key": "secrets", "client_secret": "secrets", "otp_seed": "otp", "reset_token": "secrets"})
    );
    let warned: Vec<String> = p["warnings"].as_array().unwrap().iter().map(|x| x["message"].as_str().unwrap().to_string()).collect();
    for c in ["api_key", "client_secret", "reset_token", "admin_passwd", "otp_seed"] {
        assert!(warned.iter().any(|m| m.contains(&format!("`{c}`"))), "no warning for {c}: {warned:?}");
    }
    assert!(!warned.iter().any(|m| m.contains("token_count")), "not_sensitive is ignored: {warned:?}");
    w.run(&["plan", "--db", &url(&src), "--config", &config.display().to_string(), "--strict"]).fails_with(&["api_key"]);

    // Withheld by default: not in the archive, filled on import.
    let archive = w.path("acme.orgport");
    w.export(&src, Some(&config), None, &["1"], &[], &archive).ok();
    let raw = bytes(&archive);
    let (_, decoded) = archive_rows(&archive);
    for secret in ["AKIA-SOURCE-KEY-1", "reset-me-1", "hunter2", "correct horse"] {
        assert!(!raw.windows(secret.len()).any(|x| x == secret.as_bytes()));
        assert!(!decoded["integrations"].iter().flatten().any(|v| v.as_str() == Some(secret)), "{secret} travelled");
    }
    assert!(!decoded["integrations"].iter().flatten().any(|v| *v == Value::Int(424242)), "the OTP seed travelled");
    let new = new_org(&w.import_json(&tgt, Some(&config), &archive));
    w.verify(&tgt, Some(&config), &archive, &[&new]).ok();
    let specs = vec![
        spec("accounts", "SELECT * FROM accounts WHERE id = ?1").fresh(&["id"]),
        spec("integrations", "SELECT * FROM integrations WHERE account_id = ?1")
            .fresh(&["id"])
            .reference(&["account_id"], "accounts", &["id"])
            .ignore(&["api_key", "client_secret", "reset_token", "admin_passwd", "otp_seed"])
            .pair_by(&["label"]),
    ];
    let paired = assert_org_equal(&src, &Cell::Int(1), &tgt, &Cell::Int(new.parse().unwrap()), &specs);
    for (s, t) in &paired.pairs["integrations"] {
        for (col, nullable) in
            [("api_key", false), ("client_secret", true), ("reset_token", true), ("admin_passwd", false), ("otp_seed", false)]
        {
            let c = paired.col("integrations", col);
            if nullable {
                assert_eq!(t[c], Cell::Null, "{col}: a withheld nullable column becomes NULL");
            } else {
                assert_ne!(t[c], s[c], "{col}: the source value must not appear");
                assert!(
                    !t[c].is_null() && t[c] != Cell::text(""),
                    "{col}: a withheld NOT NULL column gets a non-empty value, got {:?}",
                    t[c]
                );
            }
        }
        assert_eq!(t[paired.col("integrations", "token_count")], s[paired.col("integrations", "token_count")]);
    }

    // With every group, everything travels as it is.
    let archive = w.path("acme-all.orgport");
    w.export(&src, Some(&config), None, &["1"], &["--with", "secrets,passwords,otp"], &archive).ok();
    let new = new_org(&w.import_json(&tgt, Some(&config), &archive));
    w.verify(&tgt, Some(&config), &archive, &[&new]).ok();
    let mut all = specs.clone();
    all[1].ignore.clear();
    assert_org_equal(&src, &Cell::Int(1), &tgt, &Cell::Int(new.parse().unwrap()), &all);
}

const PEOPLE_SCHEMA: &str = "
CREATE TABLE ws (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE people (id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE, handle TEXT NOT NULL UNIQUE);
CREATE TABLE members (ws_id INTEGER NOT NULL REFERENCES ws(id), person_id INTEGER NOT NULL REFERENCES people(id), PRIMARY KEY (ws_id, person_id));
";

/// A shared row that is created (its e-mail is new) but whose other unique column is taken on the
/// target: a conflict like any other, reported before writing, or resolved by the policy.
#[test]
fn a_created_shared_row_colliding_on_another_unique_column_follows_the_policy() {
    let w = Work::new();
    let src = w.db(
        "src.db",
        &format!("{PEOPLE_SCHEMA} INSERT INTO ws VALUES (1, 'a'); INSERT INTO people VALUES (1, 'a@x', 'bob'), (2, 'c@x', 'carol'), (3, 'e@x', 'eve'); INSERT INTO members VALUES (1, 1), (1, 2), (1, 3);"),
    );
    let tgt = w.db("tgt.db", &format!("{PEOPLE_SCHEMA} INSERT INTO ws VALUES (1, 't'); INSERT INTO people VALUES (1, 'b@x', 'bob'), (2, 'd@x', 'carol'), (3, 'e@x', 'eve');"));
    let fail = w.config("fail.toml", "root = \"ws\"\n[match]\npeople = [\"email\"]\n");
    let suffix = w.config("suffix.toml", "root = \"ws\"\n[match]\npeople = [\"email\"]\n[on_conflict]\n\"people.handle\" = \"suffix\"\n");
    let archive = w.path("a.orgport");
    w.export(&src, Some(&fail), None, &["1"], &[], &archive).ok();
    let before_bytes = bytes(&tgt);
    w.import(&tgt, Some(&fail), &archive, &[]).fails_with(&["2 unique value(s)", "people", "handle", "bob", "carol"]);
    assert_same_bytes(&tgt, &before_bytes);

    let before = snapshot(&tgt);
    let report = w.import_json(&tgt, Some(&suffix), &archive);
    assert_eq!(report["tables"]["people"]["created"], 2);
    assert_eq!(report["tables"]["people"]["matched"], 1, "eve is matched by e-mail");
    let new: i64 = new_org(&report).parse().unwrap();
    w.verify(&tgt, Some(&suffix), &archive, &[&new.to_string()]).ok();
    let added = assert_only_added(&before, &snapshot(&tgt));
    let mut people: Vec<(Cell, Cell)> = added["people"].iter().map(|r| (r[1].clone(), r[2].clone())).collect();
    people.sort();
    assert_eq!(people, vec![(Cell::text("a@x"), Cell::text("bob-2")), (Cell::text("c@x"), Cell::text("carol-2"))]);
    let members =
        rows(&open(&tgt), "SELECT p.email FROM members m JOIN people p ON p.id = m.person_id WHERE m.ws_id = ?1 ORDER BY 1", &[&new]);
    assert_eq!(members, vec![vec![Cell::text("a@x")], vec![Cell::text("c@x")], vec![Cell::text("e@x")]]);
}
