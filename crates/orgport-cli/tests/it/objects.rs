//! Archives in object stores: `--out` and `--in` as `s3://` and `gs://` URLs, against the real
//! servers of `servers`. The `orgport` processes get the standard variables (`AWS_*`,
//! `STORAGE_EMULATOR_HOST`) from the test.

use std::collections::BTreeMap;
use std::io::{Read, Write};

use orgport_objects::ObjectUrl;

use crate::servers::*;
use crate::util::*;

/// The example organisation exported to an object, imported from it into a target that holds
/// other organisations, verified from it, and compared field by field with its source.
fn round_trip(server: &dyn Server) {
    let mut w = Work::new();
    w.env = server.env();
    let (url, bucket) = server.object("roundtrip", "exports/org-1.orgport");
    let (src, tgt) = example_pair(&w);
    let config = example_config();
    let out = w.export(&src, Some(&config), None, &["1"], &[], at(&url));
    out.ok();
    assert!(out.stderr.contains(&format!("→ {url}")), "{}", out.stderr);
    let report = w.import_json(&tgt, Some(&config), at(&url));
    let org = new_org(&report);
    let v = w.verify(&tgt, Some(&config), at(&url), &[&org]);
    v.ok();
    assert!(v.stdout.contains("verified"), "{}", v.stdout);
    assert_org_equal(&src, &Cell::Int(1), &tgt, &Cell::Int(org.parse().expect("an integer key")), &example_specs());
    assert_eq!(server.keys(&bucket), ["exports/org-1.orgport"]);
}

#[test]
fn example_org_round_trips_through_s3_field_by_field() {
    if let Some(s3) = s3() {
        round_trip(&s3);
    }
}

#[test]
fn example_org_round_trips_through_gcs_field_by_field() {
    if let Some(gcs) = gcs() {
        round_trip(&gcs);
    }
}

/// `inspect` of an object prints the manifest of the same export written to a file.
#[test]
fn inspect_reads_an_object_as_it_reads_a_file() {
    let (Some(s3), Some(gcs)) = (s3(), gcs()) else { return };
    let mut w = Work::new();
    let (src, _) = example_pair(&w);
    let config = example_config();
    let without_time = |mut m: serde_json::Value| {
        m.as_object_mut().expect("a manifest").remove("created_unix");
        m
    };
    w.export(&src, Some(&config), None, &["1"], &[], &w.path("org-1.orgport")).ok();
    let local = without_time(w.manifest(&w.path("org-1.orgport")));
    assert_eq!(local["orgs"], serde_json::json!([{"int": 1}]), "test setup: {local}");
    for server in [&s3 as &dyn Server, &gcs] {
        w.env = server.env();
        let (url, _) = server.object("inspect", "org-1.orgport");
        w.export(&src, Some(&config), None, &["1"], &[], at(&url)).ok();
        assert_eq!(without_time(w.manifest(at(&url))), local, "{url}");
    }
}

/// The export opens the upload before it looks for the organisation: failing then, it abandons
/// the upload, and the bucket holds nothing (S3: no multipart upload left open either).
#[test]
fn a_failed_export_leaves_no_object_behind() {
    let (Some(s3), Some(gcs)) = (s3(), gcs()) else { return };
    let mut w = Work::new();
    let (src, _) = example_pair(&w);
    let config = example_config();
    let mut s3_bucket = String::new();
    for server in [&s3 as &dyn Server, &gcs] {
        w.env = server.env();
        let (url, bucket) = server.object("failed", "org-999.orgport");
        w.export(&src, Some(&config), None, &["999"], &[], at(&url)).fails_with(&["organisation 999 not found"]);
        assert_eq!(server.keys(&bucket), Vec::<String>::new(), "{url}");
        if server.scheme() == "s3" {
            s3_bucket = bucket;
        }
    }
    assert_eq!(s3.pending_uploads(&s3_bucket), 0, "the multipart upload was not aborted");
}

#[test]
fn an_existing_object_is_replaced_only_with_force() {
    let (Some(s3), Some(gcs)) = (s3(), gcs()) else { return };
    let mut w = Work::new();
    let (src, _) = example_pair(&w);
    let config = example_config();
    for server in [&s3 as &dyn Server, &gcs] {
        w.env = server.env();
        let (url, _) = server.object("force", "org.orgport");
        w.export(&src, Some(&config), None, &["1"], &[], at(&url)).ok();
        let refused = w.export(&src, Some(&config), None, &["2"], &[], at(&url));
        refused.fails_with(&[&format!("`{url}` already exists"), "hint: pass `--force`"]);
        assert_eq!(w.manifest(at(&url))["orgs"], serde_json::json!([{"int": 1}]), "{url} was replaced without --force");
        w.export(&src, Some(&config), None, &["2"], &["--force"], at(&url)).ok();
        assert_eq!(w.manifest(at(&url))["orgs"], serde_json::json!([{"int": 2}]), "{url} was not replaced with --force");
    }
}

/// Wrong credentials, a missing object and a missing bucket: one `error:` line naming the
/// object and what is wrong, and no secret anywhere in the output.
#[test]
fn wrong_credentials_and_missing_objects_are_one_clear_line_without_the_secret() {
    let (Some(s3), Some(gcs)) = (s3(), gcs()) else { return };
    let mut w = Work::new();
    let (src, tgt) = example_pair(&w);
    let config = example_config();
    let clear = |out: &Out, message: &str, secrets: &[&str]| {
        out.fails_with(&[message]);
        assert_eq!(out.stderr.trim_end(), format!("error: {message}"), "one line expected");
        for secret in secrets {
            assert!(!out.stderr.contains(secret) && !out.stdout.contains(secret), "the secret is in the output:\n{}", out.stderr);
        }
    };

    w.env = s3.env();
    let bucket = s3.bucket("errors");
    let url = format!("s3://{bucket}/org-1.orgport");
    w.export(&src, Some(&config), None, &["1"], &[], at(&url)).ok();
    let right = s3.secret_key.as_str();
    let wrong = "wrong-secret-key-4f1c9a7e";
    w.env = s3.env().into_iter().map(|(k, v)| if k == "AWS_SECRET_ACCESS_KEY" { (k, wrong.to_string()) } else { (k, v) }).collect();
    let denied = format!("cannot read `{url}`: access denied (check `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`)");
    clear(&w.import(&tgt, Some(&config), at(&url), &[]), &denied, &[wrong, right]);
    clear(&w.inspect(at(&url)), &denied, &[wrong, right]);
    // With `--force` the export does not ask whether the object exists: the upload is refused.
    let refused = denied.replace("cannot read", "cannot write");
    clear(&w.export(&src, Some(&config), None, &["1"], &["--force"], at(&url)), &refused, &[wrong, right]);
    clear(&w.export(&src, Some(&config), None, &["1"], &[], at(&url)), &denied, &[wrong, right]);

    w.env = s3.env();
    let missing = format!("s3://{bucket}/nope.orgport");
    clear(&w.import(&tgt, Some(&config), at(&missing), &[]), &format!("cannot read `{missing}`: no such object"), &[right]);
    // (Not written to: SeaweedFS creates a bucket that an upload names.)
    let no_bucket = format!("s3://{}/org-1.orgport", unique("absent"));
    clear(&w.inspect(at(&no_bucket)), &format!("cannot read `{no_bucket}`: no such bucket"), &[right]);

    w.env = gcs.env();
    let missing = format!("gs://{}/nope.orgport", gcs.bucket("errors"));
    clear(&w.verify(&tgt, Some(&config), at(&missing), &["1"]), &format!("cannot read `{missing}`: no such object"), &[]);
    let no_bucket = format!("gs://{}/org-1.orgport", unique("absent"));
    clear(&w.inspect(at(&no_bucket)), &format!("cannot read `{no_bucket}`: no such bucket"), &[]);
    clear(&w.export(&src, Some(&config), None, &["1"], &[], at(&no_bucket)), &format!("cannot write `{no_bucket}`: no such bucket"), &[]);
}

/// Objects larger than a part go out in several parts (S3) or chunks (GCS) and come back
/// byte for byte, at a part's exact multiple too; a writer dropped after parts went out leaves
/// no object (and on S3 no open upload).
#[test]
fn large_objects_stream_in_parts_and_an_unfinished_one_never_appears() {
    let (Some(s3), Some(gcs)) = (s3(), gcs()) else { return };
    const PART: usize = 8 << 20; // orgport-objects' part size
    let data = random_bytes(1, 2 * PART + 1);
    let mut s3_bucket = String::new();
    for server in [&s3 as &dyn Server, &gcs] {
        let bucket = server.bucket("large");
        let env: BTreeMap<String, String> = server.env().into_iter().collect();
        let open = |key: &str| {
            let url = ObjectUrl::parse(&format!("{}://{bucket}/{key}", server.scheme())).expect("a URL").expect("an object URL");
            (url.open(|name| env.get(name).cloned()).expect("opening the store"), url.key().to_string())
        };
        for len in [2 * PART, PART + 1] {
            let (store, key) = open(&format!("object-{len}"));
            assert_eq!(store.size(&key).expect("size"), None);
            let mut writer = store.writer(&key).expect("a writer");
            for piece in data[..len].chunks(100_000) {
                writer.write_all(piece).expect("writing");
            }
            writer.finish().expect("finishing the upload");
            assert_eq!(store.size(&key).expect("size"), Some(len as u64), "{bucket}/{key}");
            let mut back = Vec::new();
            store.reader(&key).expect("a reader").read_to_end(&mut back).expect("reading");
            assert!(back == data[..len], "{bucket}/{key}: the bytes read differ from those written");
        }
        let (store, key) = open("unfinished");
        let mut writer = store.writer(&key).expect("a writer");
        writer.write_all(&data).expect("writing");
        drop(writer);
        assert_eq!(store.size(&key).expect("size"), None, "{bucket}/{key} appeared without finish");
        let mut keys = server.keys(&bucket);
        keys.sort();
        assert_eq!(keys, [format!("object-{}", 2 * PART), format!("object-{}", PART + 1)]);
        if server.scheme() == "s3" {
            s3_bucket = bucket;
        }
    }
    assert_eq!(s3.pending_uploads(&s3_bucket), 0, "the unfinished upload was not aborted");
}

/// A writer killed after its first parts went out (forgotten, so its drop never aborts the
/// upload) leaves an S3 multipart upload, which S3 bills until it is aborted: the store's
/// `remove_leftovers`, which `import --cleanup` calls for the keys of killed imports, aborts the
/// uploads of that key and no other.
#[test]
fn the_uploads_killed_writes_leave_in_s3_are_aborted_by_key() {
    let Some(s3) = s3() else { return };
    const PART: usize = 8 << 20; // orgport-objects' part size
    let bucket = s3.bucket("killed-uploads");
    let env: BTreeMap<String, String> = s3.env().into_iter().collect();
    let url = ObjectUrl::parse(&format!("s3://{bucket}/base/x")).expect("a URL").expect("an object URL");
    let store = url.open(|name| env.get(name).cloned()).expect("opening the store");
    let data = random_bytes(3, PART + 1);
    for key in ["4/killed & gone.bin", "4/killed & gone.bin", "4/other.bin"] {
        let mut writer = store.writer(key).expect("a writer");
        writer.write_all(&data).expect("writing");
        std::mem::forget(writer);
    }
    assert_eq!(s3.pending_uploads(&bucket), 3, "test setup: the forgotten writers' uploads");
    assert_eq!(store.remove_leftovers("4/killed & gone.bin").expect("aborting"), 2);
    assert_eq!(s3.pending_uploads(&bucket), 1, "the other key's upload must stay");
    assert_eq!(store.remove_leftovers("4/killed & gone.bin").expect("nothing left"), 0);
    assert_eq!(store.remove_leftovers("4/").expect("no directories in a bucket"), 0);
    assert_eq!(store.remove_leftovers("4/other.bin").expect("aborting"), 1);
    assert_eq!(s3.pending_uploads(&bucket), 0);
    assert!(s3.keys(&bucket).is_empty(), "an aborted upload left an object");
}

/// `--gcs-credentials` is the service-account file GCS signs in with, in place of
/// GOOGLE_APPLICATION_CREDENTIALS: one that is missing or holds no valid key is named.
#[test]
fn the_gcs_credentials_flag_names_the_file_it_cannot_use() {
    let mut w = Work::new();
    w.env = vars(&[("STORAGE_EMULATOR_HOST", ""), ("GOOGLE_APPLICATION_CREDENTIALS", "/elsewhere/unused.json")]);
    let missing = w.path("missing-sa.json");
    let out = w.run(&["inspect", "--in", "gs://bucket/org.orgport", "--gcs-credentials", &missing.display().to_string()]);
    out.fails_with(&["cannot open `gs://bucket/org.orgport`", &missing.display().to_string(), "No such file"]);
    let invalid = w.config(
        "invalid-sa.json",
        r#"{"type": "service_account", "client_email": "a@b", "private_key_id": "k",
        "private_key": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "token_uri": "http://127.0.0.1:9/token"}"#,
    );
    let out = w.run(&["inspect", "--in", "gs://bucket/org.orgport", "--gcs-credentials", &invalid.display().to_string()]);
    out.fails_with(&["cannot open `gs://bucket/org.orgport`", "Invalid RSA key"]);
    assert!(!out.stderr.contains("AAAA"), "the key is in the message:\n{}", out.stderr);
}
