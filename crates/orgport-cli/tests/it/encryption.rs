//! Encrypted archives (age, X25519): `export --encrypt-to` / `--encrypt-to-file`, read back by
//! `import`, `verify` and `inspect` with `--identity`. Nothing of the archive is readable
//! without an identity; a missing, wrong or unusable key and a damaged ciphertext are clear
//! errors that write nothing.

use rusqlite::Connection;

use crate::util::*;

const AGE_MAGIC: &[u8] = b"age-encryption.org/v1\n";

fn arg(path: &std::path::Path) -> String {
    path.display().to_string()
}

#[test]
fn an_encrypted_archive_round_trips_and_shows_nothing_without_an_identity() {
    let w = Work::new();
    let (src, tgt) = example_pair(&w);
    let config = example_config();
    let (id_a, recipient_a) = age_keys(&w, "a.key");
    let (id_b, recipient_b) = age_keys(&w, "b.key");
    let (id_stranger, _) = age_keys(&w, "stranger.key");
    let recipients = w.config("recipients.txt", &format!("# the operators\n\n{recipient_b}\n"));

    let plain = w.path("plain.orgport");
    w.export(&src, Some(&config), None, &["1"], &[], &plain).ok();
    let sealed = w.path("sealed.orgport");
    let out = w.export(&src, Some(&config), None, &["1"], &["--encrypt-to", &recipient_a, "--encrypt-to-file", &arg(&recipients)], &sealed);
    out.ok();
    assert!(out.stderr.contains("encrypted with age for 2 recipient(s)"), "{}", out.stderr);

    // The bytes: an age file, with nothing of the organisation in clear.
    let bytes = bytes(&sealed);
    assert!(bytes.starts_with(AGE_MAGIC), "not an age file");
    let conn = Connection::open(&src).unwrap();
    let name = one(&conn, "SELECT name FROM workspaces WHERE id = 1", &[]).as_str().to_string();
    let email = one(&conn, "SELECT u.email FROM users u JOIN memberships m ON m.user_id = u.id WHERE m.workspace_id = 1 LIMIT 1", &[])
        .as_str()
        .to_string();
    for clear in [b"ORGPORT".as_slice(), b"workspaces", b"root_table", name.as_bytes(), email.as_bytes()] {
        assert!(!bytes.windows(clear.len()).any(|win| win == clear), "{:?} in the ciphertext", String::from_utf8_lossy(clear));
    }

    // inspect: without an identity only the number of recipients; with one, the manifest.
    let shown = w.inspect(&sealed);
    shown.ok();
    assert_eq!(shown.json(), serde_json::json!({"encrypted": "age", "recipient_stanzas": 2}));
    assert!(shown.stderr.contains("--identity"), "{}", shown.stderr);
    let opened = w.run(&["inspect", "--in", &arg(&sealed), "--identity", &arg(&id_b)]);
    opened.ok();
    assert_eq!(opened.json()["tables"], w.manifest(&plain)["tables"], "the encrypted archive holds the plain one's rows");

    // Refused before the first write: no identity, a stranger's, a damaged or cut ciphertext.
    let before = snapshot(&tgt);
    w.import(&tgt, Some(&config), &sealed, &[])
        .fails_with(&["the archive is encrypted (age, 2 recipient stanza(s))", "hint: pass `--identity FILE`"]);
    w.import(&tgt, Some(&config), &sealed, &["--identity", &arg(&id_stranger)])
        .fails_with(&["cannot decrypt the archive: the archive is encrypted for 2 recipient(s), and no identity given is one of them"]);
    let damaged = |name: &str, bytes: Vec<u8>| {
        let path = w.path(name);
        std::fs::write(&path, bytes).unwrap();
        path
    };
    let mut flipped = bytes.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x10;
    let flipped = damaged("flipped.orgport", flipped);
    w.import(&tgt, Some(&config), &flipped, &["--identity", &arg(&id_a)])
        .fails_with(&["archive is corrupt: the encrypted archive is damaged or truncated"]);
    let mut header = bytes.clone();
    header[40] ^= 0x01;
    let header = damaged("header.orgport", header);
    w.import(&tgt, Some(&config), &header, &["--identity", &arg(&id_a)]).fails_with(&["cannot decrypt the archive"]);
    let cut = damaged("cut.orgport", bytes[..bytes.len() - 100].to_vec());
    w.import(&tgt, Some(&config), &cut, &["--identity", &arg(&id_a)])
        .fails_with(&["archive is corrupt: the encrypted archive is damaged or truncated"]);
    assert_eq!(snapshot(&tgt), before, "a refused import wrote to the target");

    // With either identity: imported, verified, and equal to the source field by field.
    let report = w.import(&tgt, Some(&config), &sealed, &["--json", "--identity", &arg(&id_a)]);
    report.ok();
    let org = new_org(&report.json());
    w.run(&["verify", "--db", &url(&tgt), "--config", &arg(&config), "--in", &arg(&sealed), "--org", &org, "--identity", &arg(&id_b)]).ok();
    w.verify(&tgt, Some(&config), &sealed, &[&org]).fails_with(&["is encrypted", "--identity"]);
    assert_org_equal(&src, &Cell::Int(1), &tgt, &Cell::Int(org.parse().unwrap()), &example_specs());

    // A plain archive reads as it is, with or without an identity.
    w.run(&["inspect", "--in", &arg(&plain), "--identity", &arg(&id_a)]).ok();
}

#[test]
fn keys_that_cannot_be_used_are_named_never_shown() {
    let w = Work::new();
    let (src, _) = example_pair(&w);
    let config = example_config();
    let (identity, _) = age_keys(&w, "a.key");
    let secret = std::fs::read_to_string(&identity).unwrap().lines().last().unwrap().to_string();
    let out = w.path("never.orgport");
    let export = |extra: &[&str]| w.export(&src, Some(&config), None, &["1"], extra, &out);

    let e = export(&["--encrypt-to", "age1notakey"]);
    e.fails_with(&["recipient 1 is not an age X25519 recipient (`age1…`)"]);
    let e = export(&["--encrypt-to", &secret]);
    e.fails_with(&["recipient 1 is a secret key (an identity), not a recipient", "age-keygen -y"]);
    assert!(!e.stderr.contains(&secret[20..]), "the secret key was repeated:\n{}", e.stderr);
    let file = w.config("recipients.txt", &format!("# ops\n\n{secret}\n"));
    let e = export(&["--encrypt-to-file", &arg(&file)]);
    e.fails_with(&["recipients.txt`, line 3: is a secret key"]);
    assert!(!e.stderr.contains(&secret[20..]), "the secret key was repeated:\n{}", e.stderr);
    let empty = w.config("empty.txt", "# nobody\n");
    export(&["--encrypt-to-file", &arg(&empty)]).fails_with(&["empty.txt` lists no recipient"]);
    assert!(!out.exists(), "an archive was written");

    let plain = w.path("plain.orgport");
    w.export(&src, Some(&config), None, &["1"], &[], &plain).ok();
    let wrong = w.config("wrong.key", "# a recipient is no identity\nage1notasecret\n");
    let e = w.run(&["inspect", "--in", &arg(&plain), "--identity", &arg(&wrong)]);
    e.fails_with(&["wrong.key`, line 2: not an age X25519 identity"]);
    assert!(!e.stderr.contains("age1notasecret"), "{}", e.stderr);
    w.run(&["inspect", "--in", &arg(&plain), "--identity", &arg(&w.path("missing.key"))])
        .fails_with(&["cannot read the identity file", "missing.key"]);
}

#[test]
fn the_server_encrypts_its_exports_and_decrypts_what_it_imports() {
    use crate::serve::Serve;
    let w = Work::new();
    let (src, tgt) = example_pair(&w);
    let (identity, recipient) = age_keys(&w, "server.key");
    let source = Serve::start(&w, &src, None, &["--encrypt-to", &recipient]);
    let exported = source.get("/api/orgs/1/export");
    exported.status(200);
    assert!(exported.body.starts_with(AGE_MAGIC), "the server's export is not encrypted");

    // A server without the identity refuses the archive, naming what it lacks.
    let before = snapshot(&tgt);
    let blind = Serve::start(&w, &tgt, None, &[]);
    blind.post("/api/orgs/import", exported.body.clone()).status(422).error(&["the archive is encrypted", "--identity FILE"]);
    drop(blind);
    assert_eq!(snapshot(&tgt), before);

    let target = Serve::start(&w, &tgt, None, &["--identity", &arg(&identity)]);
    let report = target.post("/api/orgs/import", exported.body.clone()).status(200).json();
    let org = new_org(&report);
    let archive = w.path("api.orgport");
    std::fs::write(&archive, &exported.body).unwrap();
    let config = example_config();
    w.run(&["verify", "--db", &url(&tgt), "--config", &arg(&config), "--in", &arg(&archive), "--org", &org, "--identity", &arg(&identity)])
        .ok();
    assert_org_equal(&src, &Cell::Int(1), &tgt, &Cell::Int(org.parse().unwrap()), &example_specs());
}

#[test]
fn sensitive_groups_leave_encrypted_or_with_an_explicit_flag() {
    use crate::serve::Serve;
    let w = Work::new();
    let (src, _) = example_pair(&w);
    let config = example_config();
    let (_, recipient) = age_keys(&w, "ops.key");
    let out = w.path("org.orgport");
    w.export(&src, Some(&config), None, &["1"], &["--with", "passwords,otp"], &out).fails_with(&[
        "`--with passwords,otp` puts sensitive values in the archive, and it is not encrypted",
        "hint: pass `--encrypt-to RECIPIENT`",
        "`--allow-plaintext-secrets`",
    ]);
    assert!(!out.exists(), "a refused export wrote an archive");
    let sealed = w.export(&src, Some(&config), None, &["1"], &["--with", "passwords", "--encrypt-to", &recipient], &out);
    sealed.ok();
    assert!(!sealed.stderr.contains("warning"), "{}", sealed.stderr);
    std::fs::remove_file(&out).unwrap();
    let clear = w.export(&src, Some(&config), None, &["1"], &["--with", "passwords", "--allow-plaintext-secrets"], &out);
    clear.ok();
    assert!(clear.stderr.contains("warning: the archive holds the sensitive groups `passwords` unencrypted"), "{}", clear.stderr);
    assert!(archive_rows(&out).0.with_groups == ["passwords"]);

    let plain = Serve::start(&w, &src, None, &[]);
    plain.get("/api/orgs/1/export?with=passwords").status(400).error(&[
        "`with=` asks for sensitive values (passwords)",
        "--encrypt-to",
        "--allow-plaintext-secrets",
    ]);
    plain.get("/api/orgs/1/export").status(200);
    let encrypting = Serve::start(&w, &src, None, &["--encrypt-to", &recipient]);
    assert!(encrypting.get("/api/orgs/1/export?with=passwords").status(200).body.starts_with(AGE_MAGIC));
    let allowing = Serve::start(&w, &src, None, &["--allow-plaintext-secrets"]);
    assert!(allowing.get("/api/orgs/1/export?with=passwords").status(200).body.starts_with(b"ORGPORT\0"));
}
