//! Archives in object stores: `--out` and `--in` as `s3://` and `gs://` URLs, against a real
//! S3-compatible server (SeaweedFS) and a real GCS emulator (fake-gcs-server) that
//! `scripts/storage.sh` starts, their addresses in `ORGPORT_S3_ENDPOINT` (with
//! `ORGPORT_S3_ACCESS_KEY`, `ORGPORT_S3_SECRET_KEY`) and `ORGPORT_GCS_ENDPOINT`. Outside CI a
//! missing server skips these tests with a notice; in CI it fails them. The `orgport` processes
//! get the standard variables (`AWS_*`, `STORAGE_EMULATOR_HOST`) from the test; each test makes
//! buckets of its own.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use futures_util::TryStreamExt;
use object_store::aws::{AmazonS3Builder, AwsAuthorizer, AwsCredential};
use object_store::ObjectStore;
use orgport_objects::ObjectUrl;

use crate::util::*;

/// The S3 server, or None (with a notice) outside CI.
fn s3() -> Option<S3> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    match (var("ORGPORT_S3_ENDPOINT"), var("ORGPORT_S3_ACCESS_KEY"), var("ORGPORT_S3_SECRET_KEY")) {
        (Some(endpoint), Some(access_key), Some(secret_key)) => Some(S3 { endpoint, access_key, secret_key }),
        _ => missing("ORGPORT_S3_ENDPOINT, ORGPORT_S3_ACCESS_KEY and ORGPORT_S3_SECRET_KEY"),
    }
}

/// The GCS emulator, or None (with a notice) outside CI.
fn gcs() -> Option<Gcs> {
    match std::env::var("ORGPORT_GCS_ENDPOINT") {
        Ok(endpoint) if !endpoint.is_empty() => Some(Gcs { endpoint }),
        _ => missing("ORGPORT_GCS_ENDPOINT"),
    }
}

fn missing<T>(what: &str) -> Option<T> {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{what} not set: CI must start the storage servers (scripts/storage.sh)");
    }
    eprintln!("notice: {what} not set; object-store tests skipped (run `bash scripts/test.sh`)");
    None
}

/// A bucket name no other test or run uses.
fn unique(name: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!("{name}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    let _ = rustls::crypto::ring::default_provider().install_default();
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime").block_on(f)
}

/// A test server: the variables orgport reads to reach it, new buckets, what a bucket holds.
trait Server {
    fn scheme(&self) -> &'static str;
    fn env(&self) -> Vec<(String, String)>;
    fn bucket(&self, name: &str) -> String;
    fn keys(&self, bucket: &str) -> Vec<String>;

    /// The URL of `key` in a new bucket, and the bucket.
    fn object(&self, bucket: &str, key: &str) -> (String, String) {
        let bucket = self.bucket(bucket);
        (format!("{}://{bucket}/{key}", self.scheme()), bucket)
    }
}

struct S3 {
    endpoint: String,
    access_key: String,
    secret_key: String,
}

impl Server for S3 {
    fn scheme(&self) -> &'static str {
        "s3"
    }

    /// The standard variables (set empty: not inherited from the test's environment).
    fn env(&self) -> Vec<(String, String)> {
        vars(&[
            ("AWS_ACCESS_KEY_ID", &self.access_key),
            ("AWS_SECRET_ACCESS_KEY", &self.secret_key),
            ("AWS_SESSION_TOKEN", ""),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ENDPOINT_URL_S3", &self.endpoint),
            ("AWS_ENDPOINT_URL", ""),
        ])
    }

    /// A new bucket; its name.
    fn bucket(&self, name: &str) -> String {
        let bucket = unique(name);
        let (status, body) = self.signed(reqwest::Method::PUT, &bucket);
        assert!(status.is_success(), "creating bucket {bucket}: {status} {body}");
        bucket
    }

    fn keys(&self, bucket: &str) -> Vec<String> {
        let store = AmazonS3Builder::new()
            .with_endpoint(&self.endpoint)
            .with_allow_http(true)
            .with_region("us-east-1")
            .with_bucket_name(bucket)
            .with_access_key_id(&self.access_key)
            .with_secret_access_key(&self.secret_key)
            .build()
            .expect("an S3 client");
        let listed: Vec<_> = block_on(store.list(None).try_collect()).expect("listing a bucket");
        listed.into_iter().map(|m| m.location.to_string()).collect()
    }
}

impl S3 {
    /// Multipart uploads started and neither completed nor aborted.
    fn pending_uploads(&self, bucket: &str) -> usize {
        let (status, body) = self.signed(reqwest::Method::GET, &format!("{bucket}?uploads"));
        assert!(status.is_success(), "listing the uploads of {bucket}: {status} {body}");
        body.matches("<Upload>").count()
    }

    /// A request with an empty body, signed with object_store's SigV4 signer (object_store has
    /// no bucket API).
    fn signed(&self, method: reqwest::Method, path: &str) -> (reqwest::StatusCode, String) {
        let url = format!("{}/{path}", self.endpoint);
        let credential = AwsCredential { key_id: self.access_key.clone(), secret_key: self.secret_key.clone(), token: None };
        let mut request = object_store::client::HttpRequest::new(Bytes::new().into());
        *request.method_mut() = method.clone();
        *request.uri_mut() = url.parse().expect("a URL");
        AwsAuthorizer::new(&credential, "s3", "us-east-1").try_authorize(&mut request, None).expect("signing");
        block_on(async {
            let mut builder = reqwest::Client::new().request(method, &url);
            for (name, value) in request.headers() {
                builder = builder.header(name.as_str(), value.to_str().expect("a header"));
            }
            let response = builder.send().await.expect("the S3 server answers");
            let status = response.status();
            (status, response.text().await.unwrap_or_default())
        })
    }
}

struct Gcs {
    endpoint: String,
}

impl Server for Gcs {
    fn scheme(&self) -> &'static str {
        "gs"
    }

    fn env(&self) -> Vec<(String, String)> {
        let host = self.endpoint.strip_prefix("http://").expect("an http:// endpoint");
        vars(&[("STORAGE_EMULATOR_HOST", host), ("GOOGLE_APPLICATION_CREDENTIALS", "")])
    }

    fn bucket(&self, name: &str) -> String {
        let bucket = unique(name);
        let url = format!("{}/storage/v1/b?project=orgport-test", self.endpoint);
        let body = format!(r#"{{"name": "{bucket}"}}"#);
        let status = block_on(async { reqwest::Client::new().post(url).body(body).send().await.expect("the GCS emulator answers").status() });
        assert!(status.is_success(), "creating bucket {bucket}: {status}");
        bucket
    }

    fn keys(&self, bucket: &str) -> Vec<String> {
        let url = format!("{}/storage/v1/b/{bucket}/o", self.endpoint);
        let text = block_on(async { reqwest::Client::new().get(url).send().await.expect("listing a bucket").text().await.expect("a listing") });
        let json: serde_json::Value = serde_json::from_str(&text).expect("a JSON listing");
        json["items"].as_array().map(|items| items.iter().map(|o| o["name"].as_str().expect("a name").to_string()).collect()).unwrap_or_default()
    }
}

fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// Where `Work`'s helpers take a path, an object URL goes as it is.
fn at(url: &str) -> &Path {
    Path::new(url)
}

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
    clear(
        &w.export(&src, Some(&config), None, &["1"], &[], at(&no_bucket)),
        &format!("cannot write `{no_bucket}`: no such bucket"),
        &[],
    );
}

/// Objects larger than a part go out in several parts (S3) or chunks (GCS) and come back
/// byte for byte, at a part's exact multiple too; a writer dropped after parts went out leaves
/// no object (and on S3 no open upload).
#[test]
fn large_objects_stream_in_parts_and_an_unfinished_one_never_appears() {
    let (Some(s3), Some(gcs)) = (s3(), gcs()) else { return };
    const PART: usize = 8 << 20; // orgport-objects' part size
    let data: Vec<u8> = {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        (0..2 * PART + 1)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    };
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
