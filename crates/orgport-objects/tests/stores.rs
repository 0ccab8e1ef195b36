//! The stores `open_store` opens — a local directory, S3, GCS — through the core's trait, the
//! buckets on a real S3-compatible server (SeaweedFS) and a real GCS emulator (fake-gcs-server)
//! that `scripts/storage.sh` starts, their addresses in `ORGPORT_S3_ENDPOINT` (with
//! `ORGPORT_S3_ACCESS_KEY`, `ORGPORT_S3_SECRET_KEY`) and `ORGPORT_GCS_ENDPOINT`. Outside CI a
//! missing server skips its tests with a notice; in CI it fails them. Each test makes buckets of
//! its own.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use object_store::aws::{AwsAuthorizer, AwsCredential};
use orgport_core::store::{ObjectInfo, ObjectStore};
use orgport_objects::open_store;

type Env = HashMap<String, String>;

/// More than one upload part (8 MiB): the multipart / resumable path.
const BIG: usize = 9 << 20;

struct S3 {
    endpoint: String,
    access_key: String,
    secret_key: String,
}

struct Gcs {
    endpoint: String,
}

/// The S3 server, or None (with a notice) outside CI.
fn s3() -> Option<S3> {
    let [endpoint, access_key, secret_key] = server(["ORGPORT_S3_ENDPOINT", "ORGPORT_S3_ACCESS_KEY", "ORGPORT_S3_SECRET_KEY"])?;
    Some(S3 { endpoint, access_key, secret_key })
}

/// The GCS emulator, or None (with a notice) outside CI.
fn gcs() -> Option<Gcs> {
    let [endpoint] = server(["ORGPORT_GCS_ENDPOINT"])?;
    Some(Gcs { endpoint })
}

/// The values of the variables that say where a server is; when one is unset, a failure in CI,
/// else None and a notice.
fn server<const N: usize>(names: [&str; N]) -> Option<[String; N]> {
    let values = names.map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()));
    if values.iter().all(Option::is_some) {
        return Some(values.map(Option::unwrap));
    }
    let what = names.join(", ");
    assert!(std::env::var("CI").as_deref() != Ok("true"), "{what} not set: CI must start the storage servers (scripts/storage.sh)");
    eprintln!("notice: {what} not set; object-store tests skipped (eval \"$(bash scripts/storage.sh start)\")");
    None
}

/// Creates a bucket no other test or run uses, by the request `create` makes for its name; the
/// bucket's URL.
fn new_bucket(scheme: &str, name: &str, create: impl FnOnce(&str) -> reqwest::RequestBuilder) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let bucket = format!("{name}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
    // reqwest is built without a crypto provider of its own.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let request = create(&bucket);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    let status = runtime.block_on(request.send()).expect("the server answers").status();
    assert!(status.is_success(), "creating bucket {bucket}: {status}");
    format!("{scheme}://{bucket}")
}

fn env(pairs: &[(&str, &str)]) -> Env {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

impl S3 {
    fn env(&self) -> Env {
        self.env_with(&self.secret_key)
    }

    fn env_with(&self, secret_key: &str) -> Env {
        env(&[
            ("AWS_ACCESS_KEY_ID", &self.access_key),
            ("AWS_SECRET_ACCESS_KEY", secret_key),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ENDPOINT_URL_S3", &self.endpoint),
        ])
    }

    /// A new bucket, created with a request signed by object_store's signer (object_store has no
    /// bucket API); its URL.
    fn bucket(&self, name: &str) -> String {
        new_bucket("s3", name, |bucket| {
            let url = format!("{}/{bucket}", self.endpoint);
            let credential = AwsCredential { key_id: self.access_key.clone(), secret_key: self.secret_key.clone(), token: None };
            let mut request = object_store::client::HttpRequest::new(Bytes::new().into());
            *request.method_mut() = reqwest::Method::PUT;
            *request.uri_mut() = url.parse().expect("a URL");
            AwsAuthorizer::new(&credential, "s3", "us-east-1").try_authorize(&mut request, None).expect("signing");
            request
                .headers()
                .iter()
                .fold(reqwest::Client::new().put(&url), |put, (name, value)| put.header(name.as_str(), value.as_bytes()))
        })
    }
}

impl Gcs {
    fn env(&self) -> Env {
        env(&[("STORAGE_EMULATOR_HOST", self.endpoint.strip_prefix("http://").expect("an http:// endpoint"))])
    }

    /// A new bucket; its URL.
    fn bucket(&self, name: &str) -> String {
        new_bucket("gs", name, |bucket| {
            let url = format!("{}/storage/v1/b?project=orgport-test", self.endpoint);
            reqwest::Client::new().post(url).body(format!(r#"{{"name": "{bucket}"}}"#))
        })
    }
}

fn open(url: &str, env: &Env) -> Box<dyn ObjectStore> {
    open_store(url, |name| env.get(name).cloned()).unwrap_or_else(|e| panic!("opening {url}: {e}"))
}

/// A new directory, kept until the test ends, and its `file://` URL.
fn directory() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let url = format!("file://{}", dir.path().display());
    (dir, url)
}

fn put(store: &dyn ObjectStore, key: &str, bytes: &[u8]) {
    let mut writer = store.writer(key).unwrap_or_else(|e| panic!("writing {key}: {e}"));
    for chunk in bytes.chunks(100_000) {
        writer.write_all(chunk).expect("writing");
    }
    writer.finish().unwrap_or_else(|e| panic!("finishing {key}: {e}"));
}

fn get(store: &dyn ObjectStore, key: &str) -> Vec<u8> {
    let mut bytes = Vec::new();
    store.reader(key).unwrap_or_else(|e| panic!("reading {key}: {e}")).read_to_end(&mut bytes).expect("reading");
    bytes
}

fn listed(store: &dyn ObjectStore, prefix: &str) -> Vec<(String, u64)> {
    store.list(prefix).unwrap_or_else(|e| panic!("listing {prefix}: {e}")).into_iter().map(|ObjectInfo { key, size }| (key, size)).collect()
}

fn pairs(expected: &[(&str, u64)]) -> Vec<(String, u64)> {
    expected.iter().map(|(k, n)| (k.to_string(), *n)).collect()
}

fn big() -> Vec<u8> {
    (0..BIG).map(|i| (i * 7 % 251) as u8).collect()
}

/// What every store does. `root` is a store's URL (a bucket or directory), `other` another
/// store's on the same service (another bucket or directory); `foreign` one of another kind.
fn exercise(root_url: &str, other_url: &str, env: &Env, foreign: &dyn ObjectStore) {
    let root = open(root_url, env);
    // A base path: keys are relative to it; a trailing `/` is not part of the store's name.
    let base = open(&format!("{root_url}/org-1/files/"), env);
    assert_eq!(base.describe(), format!("{root_url}/org-1/files"));

    put(&*base, "b/2.txt", b"22");
    put(&*base, "a.txt", b"1");
    put(&*base, "b/1.txt", b"");
    put(&*root, "org-1/filesX", b"beside the base, not in it");
    put(&*root, "outside.txt", b"outside");
    assert_eq!(listed(&*base, ""), pairs(&[("a.txt", 1), ("b/1.txt", 0), ("b/2.txt", 2)]));
    assert_eq!(listed(&*base, "b/"), pairs(&[("b/1.txt", 0), ("b/2.txt", 2)]));
    assert_eq!(listed(&*base, "b/1"), pairs(&[("b/1.txt", 0)]));
    assert_eq!(listed(&*base, "zz"), pairs(&[]));
    assert_eq!(
        listed(&*root, "org-1/"),
        pairs(&[("org-1/files/a.txt", 1), ("org-1/files/b/1.txt", 0), ("org-1/files/b/2.txt", 2), ("org-1/filesX", 26)])
    );
    assert_eq!(listed(&*root, "org-1/files"), listed(&*root, "org-1/"));

    // A byte, nothing and more than a part come back as written.
    assert_eq!(get(&*base, "a.txt"), b"1");
    assert_eq!(get(&*base, "b/1.txt"), b"");
    assert_eq!(get(&*root, "org-1/files/b/2.txt"), b"22");
    let big = big();
    put(&*base, "big.bin", &big);
    assert_eq!(base.size("big.bin").unwrap(), Some(BIG as u64));
    assert!(get(&*base, "big.bin") == big, "the 9 MiB object differs");
    assert_eq!(base.size("missing").unwrap(), None);
    let missing = base.reader("missing").err().expect("no such object").to_string();
    assert!(missing.contains(&format!("{root_url}/org-1/files/missing")) && missing.contains("no such object"), "{missing}");

    // A writer dropped unfinished leaves nothing, small or large.
    for (key, len) in [("dropped-small", 10), ("dropped-big", BIG)] {
        let mut writer = base.writer(key).expect("a writer");
        writer.write_all(&big[..len]).expect("writing");
        drop(writer);
        assert_eq!(base.size(key).unwrap(), None, "{key}");
    }

    // Copies on the service's side: within the store, and to another store of the same service.
    let other = open(other_url, env);
    assert!(root.copy_from(&*base, "b/2.txt", "copied/2.txt").expect("copying"));
    assert_eq!(get(&*root, "copied/2.txt"), b"22");
    assert!(other.copy_from(&*base, "big.bin", "copied/big.bin").expect("copying"));
    assert!(get(&*other, "copied/big.bin") == big, "the copied 9 MiB object differs");
    assert!(other.copy_from(&*base, "b/1.txt", "copied/empty").expect("copying"));
    assert_eq!(other.size("copied/empty").unwrap(), Some(0));
    let missing = other.copy_from(&*base, "missing", "copied/missing").expect_err("no source").to_string();
    assert!(missing.contains("org-1/files/missing") && missing.contains("no such object"), "{missing}");
    // Not from or to another kind of store: the caller streams those.
    assert!(!foreign.copy_from(&*base, "a.txt", "a.txt").expect("no copy"));
    assert!(!base.copy_from(foreign, "a.txt", "a.txt").expect("no copy"));

    // Deleting: gone from the listing; a missing object is no error.
    base.delete("a.txt").expect("deleting");
    assert_eq!(base.size("a.txt").unwrap(), None);
    base.delete("a.txt").expect("deleting a missing object");
    base.delete("never/was").expect("deleting a missing object");
    assert_eq!(listed(&*base, "").into_iter().map(|(k, _)| k).collect::<Vec<_>>(), ["b/1.txt", "b/2.txt", "big.bin"]);
}

#[test]
fn a_directory_is_a_store() {
    let (dir, root) = directory();
    std::fs::create_dir_all(dir.path().join("org-1/files")).unwrap();
    let (_other_dir, other) = directory();
    let foreign = match s3() {
        Some(s3) => open(&s3.bucket("foreign"), &s3.env()),
        // A bucket store opens without its server.
        None => open("s3://no-server", &env(&[("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9")])),
    };
    exercise(&root, &other, &HashMap::new(), &*foreign);
}

#[test]
fn s3_buckets_are_stores() {
    let Some(s3) = s3() else { return };
    let (_dir, local) = directory();
    exercise(&s3.bucket("root"), &format!("{}/other", s3.bucket("other")), &s3.env(), &*open(&local, &HashMap::new()));
}

#[test]
fn gcs_buckets_are_stores() {
    let Some(gcs) = gcs() else { return };
    let (_dir, local) = directory();
    exercise(&gcs.bucket("root"), &format!("{}/other", gcs.bucket("other")), &gcs.env(), &*open(&local, &HashMap::new()));
}

#[test]
fn s3_and_gcs_do_not_copy_to_each_other() {
    let (Some(s3), Some(gcs)) = (s3(), gcs()) else {
        return;
    };
    let s3 = open(&s3.bucket("s3"), &s3.env());
    let gcs = open(&gcs.bucket("gcs"), &gcs.env());
    put(&*s3, "k", b"x");
    put(&*gcs, "k", b"x");
    assert!(!s3.copy_from(&*gcs, "k", "copy").unwrap());
    assert!(!gcs.copy_from(&*s3, "k", "copy").unwrap());
}

#[test]
fn s3_with_a_wrong_secret_is_denied_and_the_secret_is_not_shown() {
    let Some(s3) = s3() else { return };
    let bucket = s3.bucket("denied");
    let secret = "not-the-secret-5f3a9c";
    let wrong = open(&bucket, &s3.env_with(secret));
    let mut writer = wrong.writer("k").expect("a writer (the request goes out when it is finished)");
    writer.write_all(b"x").unwrap();
    let errors = [
        writer.finish().expect_err("denied").to_string(),
        wrong.list("").expect_err("denied").to_string(),
        wrong.reader("k").err().expect("denied").to_string(),
    ];
    for e in &errors {
        assert!(e.contains("access denied") && e.contains(&bucket), "{e}");
        assert!(!e.contains(secret) && !e.contains(&s3.secret_key), "{e}");
    }
    // Another account is another service: no copy between them.
    let right = open(&bucket, &s3.env());
    put(&*right, "k", b"x");
    assert!(!right.copy_from(&*wrong, "k", "copy").unwrap());
}

#[test]
fn a_directory_refuses_keys_that_leave_it_and_existing_objects() {
    let (dir, url) = directory();
    let store = open(&url, &HashMap::new());
    for bad in ["../x", "/x", "a//b", "a/./b", "a\\b", "", "a/"] {
        let e = store.writer(bad).err().unwrap_or_else(|| panic!("{bad:?} accepted")).to_string();
        assert!(e.contains(&format!("invalid key `{bad}`")), "{e}");
        assert!(store.reader(bad).is_err() && store.size(bad).is_err() && store.delete(bad).is_err(), "{bad:?}");
    }

    // Never over an existing object, whoever finishes first.
    put(&*store, "a/k", b"first");
    let e = store.writer("a/k").err().expect("an existing object").to_string();
    assert!(e.contains("a/k") && e.contains("exists already"), "{e}");
    let (mut one, mut two) = (store.writer("b/k").unwrap(), store.writer("b/k").unwrap());
    one.write_all(b"one").unwrap();
    two.write_all(b"two").unwrap();
    one.finish().unwrap();
    let e = two.finish().expect_err("finished second").to_string();
    assert!(e.contains("b/k") && e.contains("exists already"), "{e}");
    assert_eq!(get(&*store, "b/k"), b"one");
    let source = open(&directory().1, &HashMap::new());
    put(&*source, "k", b"other");
    assert!(store.copy_from(&*source, "k", "a/k").is_err(), "a copy over an existing object");
    assert_eq!(get(&*store, "a/k"), b"first");

    // What is being written is a hidden file beside its place, not listed, gone when dropped.
    let mut writer = store.writer("c/k").unwrap();
    writer.write_all(&[0; 100_000]).unwrap();
    let partial: Vec<_> = std::fs::read_dir(dir.path().join("c")).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert!(partial.len() == 1 && partial[0].starts_with(".orgport-partial-"), "{partial:?}");
    assert_eq!(listed(&*store, "c/"), pairs(&[]));
    drop(writer);
    assert_eq!(std::fs::read_dir(dir.path().join("c")).unwrap().count(), 0);

    let missing = format!("file://{}", dir.path().join("none").display());
    let e = open_store(&missing, |_| None).err().expect("a missing directory").to_string();
    assert!(e.contains(&missing) && e.contains("no such directory"), "{e}");
}
