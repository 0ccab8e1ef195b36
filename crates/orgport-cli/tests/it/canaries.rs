//! Secret canaries: unique values in every sensitive column of the example (password hashes,
//! OTP secrets and devices, API tokens) and in every credential orgport is handed (a
//! PostgreSQL password, S3 secret keys, bearer tokens, a service-account key), then every
//! command run on success and failure paths with the most verbose logging there is
//! (`RUST_LOG=trace`; orgport has no log levels of its own): no canary may appear in any
//! stdout, stderr, server log line or response body, nor in an archive's bytes unless its
//! group was asked for — and then only inside an encrypted archive's plaintext, or in clear
//! with `--allow-plaintext-secrets`, which proves each check can fail.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};

use rusqlite::Connection;

use crate::serve::{Serve, ROOT};
use crate::util::*;

/// (output, canary) pairs checked, over every test of this module.
static CHECKED: AtomicUsize = AtomicUsize::new(0);

/// The canaries of one test: label → value, each unique to this run.
struct Canaries {
    tag: String,
    all: BTreeMap<&'static str, String>,
}

impl Canaries {
    fn new() -> Canaries {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        Canaries { tag: format!("{:x}{:x}", std::process::id(), nanos), all: BTreeMap::new() }
    }

    /// A new canary: `cnry` + label + this run's tag.
    fn add(&mut self, label: &'static str) -> String {
        let value = format!("cnry{label}{}", self.tag);
        self.all.insert(label, value.clone());
        value
    }

    /// Asserts that no canary is in `text` (`what` names the output).
    #[track_caller]
    fn absent(&self, what: &str, text: &[u8]) {
        self.absent_but(what, text, &[]);
    }

    /// Every canary but those labelled in `allowed` absent from `text`.
    #[track_caller]
    fn absent_but(&self, what: &str, text: &[u8], allowed: &[&str]) {
        for (label, value) in &self.all {
            if allowed.contains(label) {
                continue;
            }
            CHECKED.fetch_add(1, Ordering::Relaxed);
            assert!(!contains(text, value.as_bytes()), "canary `{label}` leaked into {what}:\n{}", String::from_utf8_lossy(text));
        }
    }

    /// Both streams of a run.
    #[track_caller]
    fn run_clean(&self, what: &str, out: &Out) {
        self.absent(&format!("{what} (stdout)"), out.stdout.as_bytes());
        self.absent(&format!("{what} (stderr)"), out.stderr.as_bytes());
    }

    #[track_caller]
    fn present(&self, what: &str, text: &[u8], label: &str) {
        assert!(contains(text, self.all[label].as_bytes()), "canary `{label}` is not in {what}: the check could not fail");
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn arg(path: &Path) -> String {
    path.display().to_string()
}

/// Every value of an archive's rows as text (the rows are compressed in the archive's bytes).
fn decoded(path: &Path) -> Vec<u8> {
    format!("{:?}", archive_rows(path).1).into_bytes()
}

/// The plaintext of an encrypted archive, decrypted by the test with age itself.
fn decrypt(sealed: &Path, identity_file: &Path, out: &Path) -> PathBuf {
    let text = std::fs::read_to_string(identity_file).unwrap();
    let identity = age::x25519::Identity::from_str(text.lines().last().unwrap()).unwrap();
    let bytes = std::fs::read(sealed).unwrap();
    let decryptor = age::Decryptor::new(&bytes[..]).expect("an age file");
    let mut plain = Vec::new();
    decryptor.decrypt(std::iter::once(&identity as &dyn age::Identity)).expect("decrypts").read_to_end(&mut plain).unwrap();
    std::fs::write(out, plain).unwrap();
    out.to_path_buf()
}

/// Canaries in every sensitive column of `db` (the example), every row; returns how many
/// rows of organisation 1 hold one, per column.
fn seed_columns(db: &Path, c: &mut Canaries) -> Vec<(&'static str, i64)> {
    let (pw, otp, device, token) = (c.add("password"), c.add("otp"), c.add("otpdevice"), c.add("apitoken"));
    let conn = Connection::open(db).unwrap();
    conn.execute_batch(&format!(
        "INSERT INTO otp_devices (user_id, label, secret) SELECT user_id, 'phone', 'x' FROM memberships WHERE workspace_id = 1;
         UPDATE users SET password_hash = '{pw}-' || id, otp_secret = '{otp}-' || id;
         UPDATE otp_devices SET secret = '{device}-' || id;
         UPDATE api_tokens SET token = '{token}-' || id;"
    ))
    .unwrap();
    let member = "user_id IN (SELECT user_id FROM memberships WHERE workspace_id = 1)";
    let counts = [
        (
            "users.password_hash",
            "SELECT count(*) FROM users WHERE id IN (SELECT user_id FROM memberships WHERE workspace_id = 1)".to_string(),
        ),
        ("otp_devices.secret", format!("SELECT count(*) FROM otp_devices WHERE {member}")),
        ("api_tokens.token", "SELECT count(*) FROM api_tokens WHERE workspace_id = 1".to_string()),
    ];
    counts
        .into_iter()
        .map(|(column, sql)| {
            let n = count(&conn, &sql, &[]);
            assert!(n > 0, "organisation 1 has no `{column}` to seed");
            (column, n)
        })
        .collect()
}

fn verbose(w: &mut Work) {
    w.env.push(("RUST_LOG".into(), "trace".into()));
    w.env.push(("RUST_BACKTRACE".into(), "1".into()));
}

#[test]
fn no_secret_reaches_an_output_or_a_plain_archive() {
    let mut w = Work::new();
    verbose(&mut w);
    let (src, tgt) = example_pair(&w);
    let mut c = Canaries::new();
    let seeded = seed_columns(&src, &mut c);
    let config = example_config();
    let failing =
        w.config("fail.toml", &example_config_text().replace("\"api_tokens.token\" = \"regenerate\"", "\"api_tokens.token\" = \"fail\""));
    assert_ne!(std::fs::read_to_string(&failing).unwrap(), example_config_text(), "test setup: the policy was not replaced");
    let (identity, recipient) = age_keys(&w, "ops.key");
    let bad_token = c.add("badbearer");

    // plan, and exports without secrets: nothing of them anywhere.
    for format in ["text", "json", "dot", "mermaid", "toml"] {
        c.run_clean("plan", &w.run(&["plan", "--db", &url(&src), "--config", &arg(&config), "--format", format]));
    }
    let plain = w.path("plain.orgport");
    let out = w.export(&src, Some(&config), None, &["1"], &[], &plain);
    out.ok();
    c.run_clean("export", &out);
    c.absent("a plain archive's bytes", &bytes(&plain));
    c.absent("a plain archive's rows", &decoded(&plain));
    let inspected = w.inspect(&plain);
    c.run_clean("inspect", inspected.ok());

    // Refused without encryption; in clear only with --allow-plaintext-secrets, and then only
    // the group asked for.
    let refused = w.export(&src, Some(&config), None, &["1"], &["--with", "passwords"], &w.path("refused.orgport"));
    refused.fails_with(&["`--with passwords` puts sensitive values in the archive, and it is not encrypted"]);
    c.run_clean("a refused export", &refused);
    let clear = w.path("clear.orgport");
    let out = w.export(&src, Some(&config), None, &["1"], &["--with", "passwords", "--allow-plaintext-secrets"], &clear);
    out.ok();
    assert!(out.stderr.contains("warning: the archive holds the sensitive groups `passwords` unencrypted"), "{}", out.stderr);
    c.run_clean("export --allow-plaintext-secrets", &out);
    c.present("the rows of an archive with `--with passwords`", &decoded(&clear), "password");
    c.absent_but("an archive with `--with passwords`", &decoded(&clear), &["password"]);
    c.absent_but("an archive with `--with passwords`", &bytes(&clear), &["password"]);

    // Encrypted with every group: none in the ciphertext, all in its plaintext.
    let sealed = w.path("sealed.orgport");
    let out = w.export(&src, Some(&config), None, &["1"], &["--with", "passwords,otp,secrets", "--encrypt-to", &recipient], &sealed);
    c.run_clean("an encrypted export", out.ok());
    c.absent("the ciphertext", &bytes(&sealed));
    let opened = decoded(&decrypt(&sealed, &identity, &w.path("opened.orgport")));
    for label in ["password", "otp", "otpdevice", "apitoken"] {
        c.present("the decrypted archive", &opened, label);
    }
    let with_identity = ["--identity".to_string(), arg(&identity)];
    let inspected = w.run(&["inspect", "--in", &arg(&sealed), &with_identity[0], &with_identity[1]]);
    c.run_clean("inspect --identity", inspected.ok());
    c.run_clean("inspect without identity", w.inspect(&sealed).ok());

    // Import, verify, and their failures: a unique token in the way, a changed token, damage.
    let target = w.copy(&tgt, "target-copy.db");
    let imported = w.import(&target, Some(&config), &sealed, &["--json", &with_identity[0], &with_identity[1]]);
    c.run_clean("import", imported.ok());
    let org = new_org(&imported.json());
    let verify = |db: &Path| {
        w.run(&[
            "verify",
            "--db",
            &url(db),
            "--config",
            &arg(&config),
            "--in",
            &arg(&sealed),
            "--org",
            &org,
            &with_identity[0],
            &with_identity[1],
        ])
    };
    c.run_clean("verify", verify(&target).ok());
    let conflict = w.import(&target, Some(&failing), &sealed, &[&with_identity[0], &with_identity[1]]);
    conflict.fails_with(&["api_tokens.token"]);
    c.run_clean("an import refused for a unique token", &conflict);
    Connection::open(&target)
        .unwrap()
        .execute(&format!("UPDATE api_tokens SET token = token || 'x' WHERE workspace_id = {org}"), [])
        .unwrap();
    Connection::open(&target)
        .unwrap()
        .execute("UPDATE users SET password_hash = password_hash || 'x', otp_secret = otp_secret || 'x'", [])
        .unwrap();
    Connection::open(&target)
        .unwrap()
        .execute(
            &format!("UPDATE tasks SET title = title || 'x' WHERE project_id IN (SELECT id FROM projects WHERE workspace_id = {org})"),
            [],
        )
        .unwrap();
    let differs = verify(&target);
    assert_eq!(differs.code, 1, "verify found no difference:\n{}", differs.stdout);
    c.run_clean("verify with differences in secrets", &differs);
    let mut damaged = bytes(&clear);
    let at = damaged.len() * 2 / 3;
    damaged[at] ^= 0x08;
    std::fs::write(w.path("damaged.orgport"), damaged).unwrap();
    let out = w.import(&tgt, Some(&config), &w.path("damaged.orgport"), &[]);
    assert_eq!(out.code, 1);
    c.run_clean("a damaged archive's import", &out);

    // The server: exports and imports, refusals, a wrong token; its log and every body.
    let source = Serve::start(&w, &src, None, &[]);
    let bodies = [
        source.get("/api/orgs/1/export?with=passwords").status(400).body.clone(),
        source.call("GET", "/api/orgs/1/export", Some(&bad_token), None).status(401).body.clone(),
        source.call("POST", "/api/orgs/import", Some(&bad_token), Some(bytes(&clear))).status(401).body.clone(),
    ];
    let exported = source.get("/api/orgs/1/export");
    exported.status(200);
    c.absent("the server's plain export", &exported.body);
    let allowing = Serve::start(&w, &src, None, &["--allow-plaintext-secrets"]);
    let with_secrets = allowing.get("/api/orgs/1/export?with=passwords,otp,secrets");
    std::fs::write(w.path("api-clear.orgport"), &with_secrets.status(200).body).unwrap();
    c.present("the server's export with `--allow-plaintext-secrets`", &decoded(&w.path("api-clear.orgport")), "apitoken");
    let sink = w.copy(&tgt, "api-target.db");
    let receiving = Serve::start(&w, &sink, Some(&failing), &[]);
    let first = receiving.post("/api/orgs/import", with_secrets.body.clone());
    first.status(200);
    let again = receiving.post("/api/orgs/import", with_secrets.body.clone());
    again.status(409);
    let mut broken = with_secrets.body.clone();
    let at = broken.len() / 2;
    broken[at] ^= 0x02;
    let job = receiving.post("/api/orgs/import?async=true", broken).status(202).json()["job"].as_str().unwrap().to_string();
    let failed = receiving.wait_job(&job, |j| j["state"] != "queued" && j["state"] != "running");
    for (i, body) in bodies.iter().chain([&first.body, &again.body, &failed.to_string().into_bytes()]).enumerate() {
        c.absent(&format!("response body {i}"), body);
    }
    for (name, server) in [("source", &source), ("allowing", &allowing), ("receiving", &receiving)] {
        let log = server.log();
        assert!(log.contains(" /api/orgs/"), "the {name} server logged no request:\n{log}");
        c.absent(&format!("the {name} server's log"), log.as_bytes());
        assert!(!log.contains(ROOT), "the bearer token is in the {name} server's log");
    }
    drop((source, allowing, receiving));

    // S3: a wrong secret key fails without showing it; the right one never shows either.
    if let Some(s3) = crate::servers::s3() {
        use crate::servers::Server;
        let fake = c.add("s3secret");
        let (object, _) = s3.object("canaries", "org-1.orgport");
        let mut env = s3.env();
        for pair in env.iter_mut().filter(|(k, _)| k == "AWS_SECRET_ACCESS_KEY") {
            pair.1 = fake.clone();
        }
        let mut wrong = Work { dir: tempfile::tempdir().unwrap(), env };
        verbose(&mut wrong);
        let out = wrong.run(&["export", "--db", &url(&src), "--config", &arg(&config), "--org", "1", "--out", &object]);
        assert_eq!(out.code, 1, "an export with a wrong secret key succeeded");
        c.run_clean("an S3 export with a wrong secret key", &out);
        c.run_clean("inspect with a wrong secret key", &wrong.run(&["inspect", "--in", &object]));
        let mut right = Work { dir: tempfile::tempdir().unwrap(), env: s3.env() };
        verbose(&mut right);
        let real = s3.secret_key.clone();
        assert!(real.len() >= 12, "the test server's secret key is too short to search for");
        let runs = [
            right.run(&[
                "export",
                "--db",
                &url(&src),
                "--config",
                &arg(&config),
                "--org",
                "1",
                "--with",
                "secrets",
                "--encrypt-to",
                &recipient,
                "--out",
                &object,
            ]),
            right.run(&["inspect", "--in", &object, &with_identity[0], &with_identity[1]]),
            right.run(&[
                "import",
                "--db",
                &url(&w.copy(&tgt, "s3-target.db")),
                "--config",
                &arg(&config),
                "--in",
                &object,
                &with_identity[0],
                &with_identity[1],
            ]),
            right.run(&["inspect", "--in", &format!("{object}-missing")]),
        ];
        for (i, out) in runs.iter().enumerate() {
            assert_eq!(out.code, if i == 3 { 1 } else { 0 }, "{}", out.stderr);
            c.run_clean(&format!("S3 run {i}"), out);
            for text in [&out.stdout, &out.stderr] {
                CHECKED.fetch_add(1, Ordering::Relaxed);
                assert!(!text.contains(&real), "the S3 secret key is in the output of S3 run {i}:\n{text}");
            }
        }
    }

    // GCS: a service-account file whose private key is a canary (invalid, so signing fails
    // before any request; its token endpoint is on loopback all the same).
    let key = c.add("gcskey");
    let sa = w.config(
        "sa.json",
        &format!(
            r#"{{"type": "service_account", "client_email": "canary@example.iam.gserviceaccount.com", "private_key_id": "{key}id",
            "private_key": "-----BEGIN PRIVATE KEY-----\n{key}\n-----END PRIVATE KEY-----\n", "token_uri": "http://127.0.0.1:9/token"}}"#
        ),
    );
    let mut gcs = Work { dir: tempfile::tempdir().unwrap(), env: vec![("STORAGE_EMULATOR_HOST".into(), String::new())] };
    verbose(&mut gcs);
    for args in [
        vec!["inspect", "--in", "gs://canary-bucket/org.orgport"],
        vec!["export", "--db", &url(&src), "--config", config.to_str().unwrap(), "--org", "1", "--out", "gs://canary-bucket/org.orgport"],
    ] {
        let mut args: Vec<String> = args.into_iter().map(String::from).collect();
        args.extend(["--gcs-credentials".into(), arg(&sa)]);
        let out = gcs.run(&args);
        assert_eq!(out.code, 1, "{}", out.stderr);
        c.run_clean("a GCS run with a canary key", &out);
    }

    eprintln!(
        "canaries: {} seeded columns of organisation 1 ({seeded:?}); {} canaries; {} (output, canary) pairs checked so far",
        seeded.len(),
        c.all.len(),
        CHECKED.load(Ordering::Relaxed)
    );
}

/// PostgreSQL: a role whose password is a canary, on a server that checks passwords
/// (scram-sha-256 on TCP): import, verify, plan and export through a URL that carries it, and
/// a wrong one given to the command line and to the server.
#[test]
fn no_database_password_reaches_an_output() {
    let Some(_) = crate::pg::server() else { return };
    let hba = "local all all trust\nhost all postgres 127.0.0.1/32 trust\nhost all all 127.0.0.1/32 scram-sha-256\n";
    let pg = crate::pg::PrivateServer::start(&[("pg_hba.conf", hba)], |dir| {
        format!("-c hba_file={dir}/pg_hba.conf -c password_encryption=scram-sha-256")
    });
    let mut w = Work::new();
    verbose(&mut w);
    let (src, _) = example_pair(&w);
    let mut c = Canaries::new();
    seed_columns(&src, &mut c);
    let password = c.add("pgpassword");
    let wrong_password = c.add("pgwrong");
    let role = format!("canary_{}", std::process::id());
    crate::pg::psql(
        &pg.url,
        &["-c", &format!("CREATE ROLE {role} LOGIN PASSWORD '{password}'"), "-c", &format!("CREATE DATABASE canaries OWNER {role}")],
    );
    let owner_url = |pw: &str| pg.url.replace("postgres@", &format!("{role}:{pw}@")).replace("/postgres", "/canaries");
    let db = owner_url(&password);
    let schema = repo_root().join("examples/saas/schema.postgres.sql");
    let load = std::process::Command::new("psql").arg(&db).args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-f"]).arg(&schema).output().unwrap();
    assert!(load.status.success(), "{}", String::from_utf8_lossy(&load.stderr));
    let config = example_config();
    let (identity, recipient) = age_keys(&w, "ops.key");
    let id = ["--identity".to_string(), arg(&identity)];
    let sealed = w.path("sealed.orgport");
    w.export(&src, Some(&config), None, &["1"], &["--with", "passwords,otp,secrets", "--encrypt-to", &recipient], &sealed).ok();

    let cfg = arg(&config);
    let imported = w.run(&["import", "--db", &db, "--config", &cfg, "--in", &arg(&sealed), "--json", &id[0], &id[1]]);
    c.run_clean("a PostgreSQL import", imported.ok());
    let org = new_org(&imported.json());
    let runs = [
        w.run(&["verify", "--db", &db, "--config", &cfg, "--in", &arg(&sealed), "--org", &org, &id[0], &id[1]]),
        w.run(&["plan", "--db", &db, "--config", &cfg, "--format", "json"]),
        w.run(&[
            "export",
            "--db",
            &db,
            "--config",
            &cfg,
            "--org",
            &org,
            "--with",
            "passwords,otp,secrets",
            "--encrypt-to",
            &recipient,
            "--out",
            &arg(&w.path("from-pg.orgport")),
        ]),
        w.run(&["import", "--db", &db, "--config", &cfg, "--in", &arg(&sealed), &id[0], &id[1], "--dry-run"]),
    ];
    for (i, out) in runs.iter().enumerate() {
        c.run_clean(&format!("PostgreSQL run {i}"), out.ok());
    }
    c.absent("an encrypted export from PostgreSQL", &bytes(&w.path("from-pg.orgport")));
    for args in [
        vec!["plan", "--db", &owner_url(&wrong_password)],
        vec!["import", "--db", &owner_url(&wrong_password), "--config", &cfg, "--in", sealed.to_str().unwrap(), &id[0], &id[1]],
    ] {
        let out = w.run(&args);
        out.fails_with(&["password authentication failed"]);
        c.run_clean("a wrong PostgreSQL password", &out);
    }
    // The server checks its database at start: a wrong password fails there, unshown.
    let out = w.run(&["serve", "--db", &owner_url(&wrong_password), "--listen", "127.0.0.1:0"]);
    out.fails_with(&["password authentication failed"]);
    c.run_clean("serve with a wrong PostgreSQL password", &out);
    eprintln!("canaries: {} (output, canary) pairs checked so far", CHECKED.load(Ordering::Relaxed));
}
