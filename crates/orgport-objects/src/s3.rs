//! S3 and S3-compatible stores, through object_store; a copy between buckets, which object_store
//! does not offer, as one CopyObject request signed with its signer.

use std::any::Any;
use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::stream::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder, AwsAuthorizer};
use object_store::client::HttpRequest;
use object_store::path::Path;
use object_store::{ObjectStore as _, ObjectStoreExt as _, PutPayload, WriteMultipart};
use orgport_core::store::{ObjectInfo, ObjectStore, ObjectWriter};
use orgport_core::{Error, Result};
use reqwest::{Method, StatusCode};
use tokio::runtime::Runtime;

use crate::blocking::{chain, runtime, BlockingReader};
use crate::location::Root;
use crate::PART;

/// What the environment says (deliberately not `Debug`: it holds the secret key).
pub(crate) struct S3Config {
    pub(crate) access_key_id: Option<String>,
    pub(crate) secret_access_key: Option<String>,
    pub(crate) session_token: Option<String>,
    pub(crate) region: String,
    pub(crate) endpoint: Option<String>,
}

pub(crate) struct S3 {
    rt: Arc<Runtime>,
    store: Arc<AmazonS3>,
    root: Root,
    /// For the requests object_store does not make (CopyObject across buckets).
    http: reqwest::Client,
    endpoint: Option<String>,
    region: String,
    access_key_id: Option<String>,
    /// Kept out of every message, whatever a server or library puts in its errors.
    secrets: Vec<String>,
}

/// The error codes of a request S3 refuses for its credentials.
const DENIED: [&str; 3] = ["AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"];
const ACCESS_DENIED: &str = "access denied (check `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`)";

impl S3 {
    pub(crate) fn open(root: Root, config: S3Config) -> std::result::Result<S3, String> {
        let mut builder = AmazonS3Builder::new().with_bucket_name(&root.bucket).with_region(&config.region);
        if let Some(endpoint) = &config.endpoint {
            // S3-compatible servers (MinIO, SeaweedFS, …) address buckets by path, often over http.
            builder =
                builder.with_endpoint(endpoint).with_virtual_hosted_style_request(false).with_allow_http(endpoint.starts_with("http://"));
        }
        if let (Some(id), Some(secret)) = (&config.access_key_id, &config.secret_access_key) {
            builder = builder.with_access_key_id(id).with_secret_access_key(secret);
        }
        if let Some(token) = &config.session_token {
            builder = builder.with_token(token);
        }
        let secrets: Vec<String> = config.secret_access_key.into_iter().chain(config.session_token).collect();
        let rt = runtime().map_err(|e| format!("cannot start the I/O runtime: {e}"))?;
        let store = builder.build().map_err(|e| redact(&chain(&e), &secrets))?;
        let http = reqwest::Client::builder().build().map_err(|e| chain(&e))?;
        Ok(S3 {
            rt,
            store: Arc::new(store),
            root,
            http,
            endpoint: config.endpoint,
            region: config.region,
            access_key_id: config.access_key_id,
            secrets,
        })
    }

    fn error(&self, action: &'static str, key: &str, e: &object_store::Error) -> Error {
        Error::Storage { action, location: self.root.location(key), reason: reason(e, &self.secrets) }
    }

    /// The object's path in the bucket, for a key [`check`] lets through.
    fn path(&self, action: &'static str, key: &str) -> Result<Path> {
        check(&self.root, key).map_err(|reason| self.root.invalid(action, key, &reason))?;
        let name = self.root.name(key);
        match Path::parse(&name) {
            Ok(path) if path.as_ref() == name => Ok(path),
            Ok(_) => Err(self.root.invalid(action, key, "object_store would address another name")),
            Err(e) => Err(self.root.invalid(action, key, &e.to_string())),
        }
    }

    /// Whether `other` reaches the same service with the same account, so that it can copy.
    fn same_service(&self, other: &S3) -> bool {
        (&self.endpoint, &self.region, &self.access_key_id, &self.secrets)
            == (&other.endpoint, &other.region, &other.access_key_id, &other.secrets)
    }

    /// The URL of the object `name` (path-style on a custom endpoint, as object_store is
    /// configured), or of the bucket with `name` empty.
    fn url(&self, name: &str) -> String {
        match &self.endpoint {
            Some(endpoint) => format!("{}/{}/{}", endpoint.trim_end_matches('/'), self.root.bucket, encode(name)),
            None => format!("https://{}.s3.{}.amazonaws.com/{}", self.root.bucket, self.region, encode(name)),
        }
    }

    /// A request object_store does not make, signed with its signer: the status and the body. A
    /// request S3 refuses for its credentials is an error saying so.
    async fn signed(
        &self,
        method: Method,
        url: &str,
        headers: &[(&'static str, String)],
    ) -> std::result::Result<(StatusCode, String), String> {
        let credential = self.store.credentials().get_credential().await.map_err(|e| reason(&e, &self.secrets))?;
        let mut request = HttpRequest::new(Bytes::new().into());
        *request.method_mut() = method.clone();
        *request.uri_mut() = url.parse().map_err(|e| format!("invalid URL: {e}"))?;
        for (name, value) in headers {
            request.headers_mut().insert(*name, value.parse().map_err(|e| format!("invalid `{name}`: {e}"))?);
        }
        AwsAuthorizer::new(&credential, "s3", &self.region)
            .try_authorize(&mut request, None)
            .map_err(|e| redact(&chain(&e), &self.secrets))?;
        let mut builder = self.http.request(method, url);
        for (name, value) in request.headers() {
            builder = builder.header(name.as_str(), value.as_bytes());
        }
        let response = builder.send().await.map_err(|e| chain(&e.without_url()))?;
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        if status == StatusCode::FORBIDDEN || DENIED.contains(&tag(&body, "Code")) {
            return Err(ACCESS_DENIED.into());
        }
        Ok((status, body))
    }

    /// CopyObject from another bucket of the same service.
    async fn copy_across(&self, bucket: &str, from: &str, to: &str) -> std::result::Result<(), String> {
        let source = format!("/{bucket}/{}", encode(from));
        let (status, body) = self.signed(Method::PUT, &self.url(to), &[("x-amz-copy-source", source)]).await?;
        // A copy can fail after its 200 has been sent: the body then holds the error.
        if status.is_success() && !body.contains("<Error>") {
            return Ok(());
        }
        Err(refusal(status, &body, &self.secrets))
    }

    /// Aborts the multipart uploads of the object `name` that were started and never completed
    /// nor aborted (a writer killed midway); how many. S3 keeps their parts, and bills them,
    /// until then. One page of the listing (1 000 uploads) per object is plenty.
    async fn abort_uploads(&self, name: &str) -> std::result::Result<usize, String> {
        let listing = format!("{}?uploads&prefix={}", self.url(""), encode(name));
        let (status, body) = self.signed(Method::GET, &listing, &[]).await?;
        if !status.is_success() {
            return Err(refusal(status, &body, &self.secrets));
        }
        let mut aborted = 0;
        for upload in body.split("<Upload>").skip(1) {
            if unescape(tag(upload, "Key")) != name {
                continue;
            }
            let url = format!("{}?uploadId={}", self.url(name), encode(&unescape(tag(upload, "UploadId"))));
            let (status, body) = self.signed(Method::DELETE, &url, &[]).await?;
            match status {
                _ if status.is_success() => aborted += 1,
                // Completed or aborted meanwhile.
                StatusCode::NOT_FOUND => {}
                _ => return Err(refusal(status, &body, &self.secrets)),
            }
        }
        Ok(aborted)
    }
}

/// The text of the first `<name>` element of an S3 answer, as it is written (escaped).
fn tag<'a>(body: &'a str, name: &str) -> &'a str {
    body.split(&format!("<{name}>")).nth(1).and_then(|rest| rest.split(&format!("</{name}>")).next()).unwrap_or_default()
}

/// XML's five escapes undone (S3 writes keys and upload ids escaped).
fn unescape(text: &str) -> String {
    text.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&apos;", "'").replace("&amp;", "&")
}

/// Why S3 answered a request with an error `status` and `body`.
fn refusal(status: StatusCode, body: &str, secrets: &[String]) -> String {
    match tag(body, "Code") {
        "NoSuchBucket" => "no such bucket".into(),
        "NoSuchKey" => "no such object".into(),
        code => redact(&format!("the server answered {status}: {code} {}", tag(body, "Message")), secrets),
    }
}

/// Why S3, as object_store addresses it, cannot hold an object under `key`, if it cannot. Besides
/// S3's own limit (1 to 1024 bytes, the base path included), object_store drops a leading or
/// trailing `/` and refuses empty, `.` and `..` segments and control characters: such a key would
/// land under another name, or fail midway through an import.
fn check(root: &Root, key: &str) -> std::result::Result<(), String> {
    root.check(key)?;
    if key.starts_with('/') {
        return Err("it starts with `/`".into());
    }
    if key.ends_with('/') {
        return Err("it ends with `/`".into());
    }
    if key.split('/').any(|part| matches!(part, "" | "." | "..")) {
        return Err("it has an empty, `.` or `..` component".into());
    }
    match key.chars().find(char::is_ascii_control) {
        Some(c) => Err(format!("it contains the control character U+{:04X}", c as u32)),
        None => Ok(()),
    }
}

/// A key in a URL path, every byte but the unreserved ones and `/` percent-encoded (as SigV4's
/// canonical request wants).
fn encode(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => out.push(b as char),
            _ => write!(out, "%{b:02X}").expect("writing to a String"),
        }
    }
    out
}

/// A copy CopyObject refuses for its size (over 5 GiB): the caller streams it instead.
fn too_large(reason: &str) -> bool {
    reason.contains("larger than the maximum allowable size")
}

/// What went wrong, in words a user can act on; the server's detail where it is not a known case.
fn reason(e: &object_store::Error, secrets: &[String]) -> String {
    let detail = redact(&chain(e), secrets);
    match e {
        object_store::Error::NotFound { .. } if detail.contains("NoSuchBucket") => "no such bucket".into(),
        object_store::Error::NotFound { .. } => "no such object".into(),
        object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. } => ACCESS_DENIED.into(),
        _ if detail.contains("NoSuchBucket") => "no such bucket".into(),
        // Listing errors come as generic ones: the server's code tells.
        _ if DENIED.iter().any(|code| detail.contains(&format!("<Code>{code}</Code>"))) => ACCESS_DENIED.into(),
        _ => detail,
    }
}

fn redact(text: &str, secrets: &[String]) -> String {
    secrets.iter().fold(text.to_string(), |t, s| t.replace(s.as_str(), "***"))
}

impl ObjectStore for S3 {
    fn describe(&self) -> String {
        self.root.describe()
    }

    fn reader(&self, key: &str) -> Result<Box<dyn Read + Send>> {
        let path = self.path("read", key)?;
        let got = self.rt.block_on(self.store.get(&path)).map_err(|e| self.error("read", key, &e))?;
        let (location, secrets) = (self.root.location(key), self.secrets.clone());
        let stream = got
            .into_stream()
            .map(move |chunk| {
                chunk.map_err(|e| {
                    io::Error::other(Error::Storage { action: "read", location: location.clone(), reason: reason(&e, &secrets) })
                })
            })
            .boxed();
        Ok(Box::new(BlockingReader { rt: self.rt.clone(), stream, chunk: Bytes::new() }))
    }

    fn writer(&self, key: &str) -> Result<Box<dyn ObjectWriter>> {
        Ok(Box::new(S3Writer {
            rt: self.rt.clone(),
            store: self.store.clone(),
            path: self.path("write", key)?,
            upload: Upload::Small(Vec::new()),
            location: self.root.location(key),
            secrets: self.secrets.clone(),
        }))
    }

    fn check_key(&self, key: &str) -> Result<()> {
        self.path("write", key).map(drop)
    }

    fn remove_leftovers(&self, key: &str) -> Result<usize> {
        // A bucket has no directories: what a killed write leaves is an upload of its key.
        if key.ends_with('/') {
            return Ok(0);
        }
        let name = self.path("clean up", key)?.to_string();
        self.rt.block_on(self.abort_uploads(&name)).map_err(|reason| Error::Storage {
            action: "clean up",
            location: self.root.location(key),
            reason,
        })
    }

    fn size(&self, key: &str) -> Result<Option<u64>> {
        match self.rt.block_on(self.store.head(&self.path("read", key)?)) {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.error("read", key, &e)),
        }
    }

    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        let failed = |e: object_store::Error| self.error("list", prefix, &e);
        // object_store lists under a directory: the prefix's, then the names that match.
        let full = self.root.name(prefix);
        let dir = match full.rfind('/') {
            Some(end) => Some(Path::parse(&full[..end]).map_err(|e| failed(e.into()))?),
            None => None,
        };
        let listed: Vec<_> = self.rt.block_on(self.store.list(dir.as_ref()).try_collect()).map_err(failed)?;
        let mut found: Vec<ObjectInfo> = listed
            .iter()
            .filter(|meta| meta.location.as_ref().starts_with(&full))
            .filter_map(|meta| Some(ObjectInfo { key: self.root.key(meta.location.as_ref())?.to_string(), size: meta.size }))
            .collect();
        found.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(found)
    }

    fn delete(&self, key: &str) -> Result<()> {
        match self.rt.block_on(self.store.delete(&self.path("delete", key)?)) {
            Err(e) if !matches!(e, object_store::Error::NotFound { .. }) || reason(&e, &self.secrets) == "no such bucket" => {
                Err(self.error("delete", key, &e))
            }
            _ => Ok(()),
        }
    }

    fn copy_from(&self, source: &dyn ObjectStore, from: &str, to: &str) -> Result<bool> {
        let Some(source) = source.as_any().downcast_ref::<S3>().filter(|s| self.same_service(s)) else { return Ok(false) };
        let (from_path, to_path) = (source.path("copy", from)?, self.path("copy", to)?);
        let copied = if source.root.bucket == self.root.bucket {
            self.rt.block_on(self.store.copy(&from_path, &to_path)).map_err(|e| reason(&e, &self.secrets))
        } else {
            self.rt.block_on(self.copy_across(&source.root.bucket, from_path.as_ref(), to_path.as_ref()))
        };
        match copied {
            Ok(()) => Ok(true),
            Err(reason) if too_large(&reason) => Ok(false),
            Err(reason) => Err(Error::Storage {
                action: "copy",
                location: format!("{}` to `{}", source.root.location(from), self.root.location(to)),
                reason,
            }),
        }
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// An object smaller than a part goes in one request when finished. A larger one is a multipart
/// upload: parts go out as they fill, at most two at a time; dropped unfinished, the upload is
/// aborted, so the parts already sent are discarded and no object appears.
struct S3Writer {
    rt: Arc<Runtime>,
    store: Arc<AmazonS3>,
    path: Path,
    upload: Upload,
    location: String,
    secrets: Vec<String>,
}

enum Upload {
    /// Less than a part so far.
    Small(Vec<u8>),
    Parts(WriteMultipart),
    Finished,
}

impl S3Writer {
    fn error(&self, e: &object_store::Error) -> Error {
        Error::Storage { action: "write", location: self.location.clone(), reason: reason(e, &self.secrets) }
    }
}

impl Write for S3Writer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Upload::Small(small) = &mut self.upload {
            if small.len() + buf.len() <= PART {
                small.extend_from_slice(buf);
                return Ok(buf.len());
            }
        }
        let (store, path, upload) = (&self.store, &self.path, &mut self.upload);
        // Inside the runtime: a full part is spawned onto it by `write`.
        let waited = self.rt.block_on(async {
            if let Upload::Small(small) = upload {
                // Past a part: a multipart upload, whose first part starts with what was held.
                let held = std::mem::take(small);
                let mut parts = WriteMultipart::new_with_chunk_size(store.put_multipart(path).await?, PART);
                parts.write(&held);
                *upload = Upload::Parts(parts);
            }
            let Upload::Parts(parts) = upload else { unreachable!("a writer is not used after finish") };
            parts.wait_for_capacity(2).await?;
            parts.write(buf);
            Ok::<_, object_store::Error>(())
        });
        waited.map_err(|e| io::Error::other(self.error(&e)))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        // Parts are sent as they fill; the rest only by `finish`, which makes the object appear.
        Ok(())
    }
}

impl ObjectWriter for S3Writer {
    fn finish(mut self: Box<Self>) -> Result<()> {
        let finished = match std::mem::replace(&mut self.upload, Upload::Finished) {
            Upload::Small(bytes) => self.rt.block_on(self.store.put(&self.path, PutPayload::from(bytes))).map(drop),
            Upload::Parts(parts) => self.rt.block_on(parts.finish()).map(drop),
            Upload::Finished => unreachable!("finish is called once"),
        };
        finished.map_err(|e| self.error(&e))
    }
}

impl Drop for S3Writer {
    fn drop(&mut self) {
        if let Upload::Parts(parts) = std::mem::replace(&mut self.upload, Upload::Finished) {
            // Best effort: an upload left behind holds no object, only parts a bucket's lifecycle
            // rule may clean up.
            let _ = self.rt.block_on(parts.abort());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_what_object_store_addresses_as_they_are() {
        let root = Root::new("s3", "b", "base");
        for good in ["a", "a/b.txt", "a/.hidden", "a b/c..d", "ü/…", "a\\b", "a%2Fb"] {
            assert_eq!(check(&root, good), Ok(()), "{good}");
        }
        for (bad, why) in [
            ("", "empty"),
            ("/a", "it starts with `/`"),
            ("a/", "it ends with `/`"),
            ("a//b", "it has an empty, `.` or `..` component"),
            ("a/./b", "it has an empty, `.` or `..` component"),
            ("..", "it has an empty, `.` or `..` component"),
            ("a\nb", "it contains the control character U+000A"),
            ("a\u{7f}", "it contains the control character U+007F"),
        ] {
            assert_eq!(check(&root, bad), Err(why.to_string()), "{bad:?}");
        }
        let long = "k".repeat(1019);
        assert_eq!(check(&root, &long), Ok(()));
        assert!(check(&root, &format!("{long}k")).unwrap_err().contains("1025 bytes long"));
    }
}
