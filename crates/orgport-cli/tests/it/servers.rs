//! The object-storage servers of the tests: a real S3-compatible server (SeaweedFS) and a real
//! GCS emulator (fake-gcs-server) that `scripts/storage.sh` starts, their addresses in
//! `ORGPORT_S3_ENDPOINT` (with `ORGPORT_S3_ACCESS_KEY`, `ORGPORT_S3_SECRET_KEY`) and
//! `ORGPORT_GCS_ENDPOINT`. Outside CI a missing server skips the tests that need it with a
//! notice; in CI it fails them. Each test makes buckets of its own. `Host` and `Place` let one test
//! run on a local directory, an S3 bucket or a GCS bucket alike.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use futures_util::TryStreamExt;
use object_store::aws::{AmazonS3Builder, AwsAuthorizer, AwsCredential};
use object_store::{ObjectStore, ObjectStoreExt};

use crate::util::{walk, Work};

/// The S3 server, or None (with a notice) outside CI.
pub fn s3() -> Option<S3> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    match (var("ORGPORT_S3_ENDPOINT"), var("ORGPORT_S3_ACCESS_KEY"), var("ORGPORT_S3_SECRET_KEY")) {
        (Some(endpoint), Some(access_key), Some(secret_key)) => Some(S3 { endpoint, access_key, secret_key }),
        _ => missing("ORGPORT_S3_ENDPOINT, ORGPORT_S3_ACCESS_KEY and ORGPORT_S3_SECRET_KEY"),
    }
}

/// The GCS emulator, or None (with a notice) outside CI.
pub fn gcs() -> Option<Gcs> {
    match std::env::var("ORGPORT_GCS_ENDPOINT") {
        Ok(endpoint) if !endpoint.is_empty() => Some(Gcs { endpoint }),
        _ => missing("ORGPORT_GCS_ENDPOINT"),
    }
}

pub fn missing<T>(what: &str) -> Option<T> {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{what} not set: CI must start the storage servers (scripts/storage.sh)");
    }
    eprintln!("notice: {what} not set; object-store tests skipped (run `bash scripts/test.sh`)");
    None
}

/// A bucket name no other test or run uses.
pub fn unique(name: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!("{name}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    let _ = rustls::crypto::ring::default_provider().install_default();
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime").block_on(f)
}

/// A test server: the variables orgport reads to reach it, new buckets, what a bucket holds.
pub trait Server {
    fn scheme(&self) -> &'static str;
    fn env(&self) -> Vec<(String, String)>;
    fn bucket(&self, name: &str) -> String;
    fn keys(&self, bucket: &str) -> Vec<String>;
    /// Writes an object with the server's own client, not orgport's.
    fn put(&self, bucket: &str, key: &str, bytes: &[u8]);
    /// An object's bytes, or None when it does not exist.
    fn get(&self, bucket: &str, key: &str) -> Option<Vec<u8>>;

    /// The URL of `key` in a new bucket, and the bucket.
    fn object(&self, bucket: &str, key: &str) -> (String, String) {
        let bucket = self.bucket(bucket);
        (format!("{}://{bucket}/{key}", self.scheme()), bucket)
    }
}

pub struct S3 {
    pub endpoint: String,
    pub access_key: String,
    pub secret_key: String,
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
        let listed: Vec<_> = block_on(self.client(bucket).list(None).try_collect()).expect("listing a bucket");
        listed.into_iter().map(|m| m.location.to_string()).collect()
    }

    fn put(&self, bucket: &str, key: &str, bytes: &[u8]) {
        let path = object_store::path::Path::from(key);
        block_on(self.client(bucket).put(&path, Bytes::copy_from_slice(bytes).into())).expect("writing an object");
    }

    fn get(&self, bucket: &str, key: &str) -> Option<Vec<u8>> {
        let path = object_store::path::Path::from(key);
        match block_on(async { self.client(bucket).get(&path).await?.bytes().await }) {
            Ok(bytes) => Some(bytes.to_vec()),
            Err(object_store::Error::NotFound { .. }) => None,
            Err(e) => panic!("reading s3://{bucket}/{key}: {e}"),
        }
    }
}

impl S3 {
    fn client(&self, bucket: &str) -> object_store::aws::AmazonS3 {
        AmazonS3Builder::new()
            .with_endpoint(&self.endpoint)
            .with_allow_http(true)
            .with_region("us-east-1")
            .with_bucket_name(bucket)
            .with_access_key_id(&self.access_key)
            .with_secret_access_key(&self.secret_key)
            .build()
            .expect("an S3 client")
    }

    /// Multipart uploads started and neither completed nor aborted.
    pub fn pending_uploads(&self, bucket: &str) -> usize {
        let (status, body) = self.signed(reqwest::Method::GET, &format!("{bucket}?uploads"));
        assert!(status.is_success(), "listing the uploads of {bucket}: {status} {body}");
        body.matches("<Upload>").count()
    }

    /// A request with an empty body, signed with object_store's SigV4 signer (object_store has
    /// no bucket API).
    pub fn signed(&self, method: reqwest::Method, path: &str) -> (reqwest::StatusCode, String) {
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

pub struct Gcs {
    pub endpoint: String,
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
        let status =
            block_on(async { reqwest::Client::new().post(url).body(body).send().await.expect("the GCS emulator answers").status() });
        assert!(status.is_success(), "creating bucket {bucket}: {status}");
        bucket
    }

    fn keys(&self, bucket: &str) -> Vec<String> {
        let url = format!("{}/storage/v1/b/{bucket}/o", self.endpoint);
        let text =
            block_on(async { reqwest::Client::new().get(url).send().await.expect("listing a bucket").text().await.expect("a listing") });
        let json: serde_json::Value = serde_json::from_str(&text).expect("a JSON listing");
        json["items"]
            .as_array()
            .map(|items| items.iter().map(|o| o["name"].as_str().expect("a name").to_string()).collect())
            .unwrap_or_default()
    }

    fn put(&self, bucket: &str, key: &str, bytes: &[u8]) {
        let url = format!("{}/upload/storage/v1/b/{bucket}/o?uploadType=media&name={}", self.endpoint, encode(key));
        let status = block_on(async {
            reqwest::Client::new().post(url).body(bytes.to_vec()).send().await.expect("the GCS emulator answers").status()
        });
        assert!(status.is_success(), "writing gs://{bucket}/{key}: {status}");
    }

    fn get(&self, bucket: &str, key: &str) -> Option<Vec<u8>> {
        let url = format!("{}/storage/v1/b/{bucket}/o/{}?alt=media", self.endpoint, encode(key));
        block_on(async {
            let response = reqwest::Client::new().get(url).send().await.expect("the GCS emulator answers");
            match response.status() {
                reqwest::StatusCode::NOT_FOUND => None,
                status if status.is_success() => Some(response.bytes().await.expect("the object's bytes").to_vec()),
                status => panic!("reading gs://{bucket}/{key}: {status}"),
            }
        })
    }
}

/// Where a test keeps objects: a directory, or a bucket of a test server.
#[derive(Clone, Copy)]
pub enum Host<'a> {
    Local,
    Remote(&'a dyn Server),
}

/// One store: a directory or a bucket, with its URL.
pub struct Place {
    pub url: String,
    pub dir: Option<PathBuf>,
    pub bucket: String,
}

impl Host<'_> {
    pub fn new_place(&self, w: &Work, name: &str) -> Place {
        match self {
            Host::Local => {
                let dir = w.path(name);
                std::fs::create_dir_all(&dir).expect("a store directory");
                Place { url: format!("file://{}", dir.display()), dir: Some(dir), bucket: String::new() }
            }
            Host::Remote(server) => {
                let bucket = server.bucket(name);
                Place { url: format!("{}://{bucket}", server.scheme()), dir: None, bucket }
            }
        }
    }

    pub fn put(&self, place: &Place, key: &str, bytes: &[u8]) {
        match (self, &place.dir) {
            (Host::Local, Some(dir)) => {
                let path = dir.join(key);
                std::fs::create_dir_all(path.parent().expect("a parent")).expect("a directory");
                std::fs::write(path, bytes).expect("writing a file");
            }
            (Host::Remote(server), _) => server.put(&place.bucket, key, bytes),
            (Host::Local, None) => unreachable!("a local place has a directory"),
        }
    }

    pub fn get(&self, place: &Place, key: &str) -> Option<Vec<u8>> {
        match (self, &place.dir) {
            (Host::Local, Some(dir)) => std::fs::read(dir.join(key)).ok(),
            (Host::Remote(server), _) => server.get(&place.bucket, key),
            (Host::Local, None) => unreachable!("a local place has a directory"),
        }
    }

    /// Every object: key → bytes.
    pub fn objects(&self, place: &Place) -> BTreeMap<String, Vec<u8>> {
        let keys = match (self, &place.dir) {
            (Host::Local, Some(dir)) => walk(dir, dir),
            (Host::Remote(server), _) => server.keys(&place.bucket),
            (Host::Local, None) => unreachable!("a local place has a directory"),
        };
        keys.into_iter().map(|k| (k.clone(), self.get(place, &k).expect("a listed object"))).collect()
    }

    pub fn env(&self) -> Vec<(String, String)> {
        match self {
            Host::Local => Vec::new(),
            Host::Remote(server) => server.env(),
        }
    }
}

/// A key as one path segment of a URL.
fn encode(key: &str) -> String {
    key.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// Where `Work`'s helpers take a path, an object URL goes as it is.
pub fn at(url: &str) -> &Path {
    Path::new(url)
}
