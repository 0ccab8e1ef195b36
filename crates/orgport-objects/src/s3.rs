//! S3 and S3-compatible stores, through object_store.

use std::io::{self, Read, Write};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::stream::StreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path;
use object_store::{ObjectStoreExt as _, WriteMultipart};
use orgport_core::store::{ObjectStore, ObjectWriter};
use orgport_core::{Error, Result};
use tokio::runtime::Runtime;

use crate::blocking::{chain, runtime, BlockingReader};
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
    bucket: String,
    /// Kept out of every message, whatever a server or library puts in its errors.
    secrets: Vec<String>,
}

impl S3 {
    pub(crate) fn open(bucket: &str, config: S3Config) -> std::result::Result<S3, String> {
        let mut builder = AmazonS3Builder::new().with_bucket_name(bucket).with_region(&config.region);
        if let Some(endpoint) = &config.endpoint {
            // S3-compatible servers (MinIO, SeaweedFS, …) address buckets by path, often over http.
            builder = builder
                .with_endpoint(endpoint)
                .with_virtual_hosted_style_request(false)
                .with_allow_http(endpoint.starts_with("http://"));
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
        Ok(S3 { rt, store: Arc::new(store), bucket: bucket.to_string(), secrets })
    }

    fn location(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.bucket)
    }

    fn error(&self, action: &'static str, key: &str, e: &object_store::Error) -> Error {
        Error::Storage { action, location: self.location(key), reason: reason(e, &self.secrets) }
    }
}

/// What went wrong, in words a user can act on; the server's detail where it is not a known case.
fn reason(e: &object_store::Error, secrets: &[String]) -> String {
    let detail = redact(&chain(e), secrets);
    match e {
        object_store::Error::NotFound { .. } if detail.contains("NoSuchBucket") => "no such bucket".into(),
        object_store::Error::NotFound { .. } => "no such object".into(),
        object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. } => {
            "access denied (check `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`)".into()
        }
        _ if detail.contains("NoSuchBucket") => "no such bucket".into(),
        _ => detail,
    }
}

fn redact(text: &str, secrets: &[String]) -> String {
    secrets.iter().fold(text.to_string(), |t, s| t.replace(s.as_str(), "***"))
}

impl ObjectStore for S3 {
    fn describe(&self) -> String {
        format!("s3://{}", self.bucket)
    }

    fn reader(&self, key: &str) -> Result<Box<dyn Read + Send>> {
        let got = self.rt.block_on(self.store.get(&Path::from(key))).map_err(|e| self.error("read", key, &e))?;
        let (location, secrets) = (self.location(key), self.secrets.clone());
        let stream = got
            .into_stream()
            .map(move |chunk| {
                chunk.map_err(|e| io::Error::other(Error::Storage { action: "read", location: location.clone(), reason: reason(&e, &secrets) }))
            })
            .boxed();
        Ok(Box::new(BlockingReader { rt: self.rt.clone(), stream, chunk: Bytes::new() }))
    }

    fn writer(&self, key: &str) -> Result<Box<dyn ObjectWriter>> {
        let upload = self.rt.block_on(self.store.put_multipart(&Path::from(key))).map_err(|e| self.error("write", key, &e))?;
        Ok(Box::new(S3Writer {
            rt: self.rt.clone(),
            upload: Some(WriteMultipart::new_with_chunk_size(upload, PART)),
            location: self.location(key),
            secrets: self.secrets.clone(),
        }))
    }

    fn size(&self, key: &str) -> Result<Option<u64>> {
        match self.rt.block_on(self.store.head(&Path::from(key))) {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.error("read", key, &e)),
        }
    }
}

/// A multipart upload: parts go out as they fill, at most two at a time; dropped unfinished, the
/// upload is aborted, so the parts already sent are discarded and no object appears.
struct S3Writer {
    rt: Arc<Runtime>,
    upload: Option<WriteMultipart>,
    location: String,
    secrets: Vec<String>,
}

impl S3Writer {
    fn error(&self, e: &object_store::Error) -> Error {
        Error::Storage { action: "write", location: self.location.clone(), reason: reason(e, &self.secrets) }
    }
}

impl Write for S3Writer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let upload = self.upload.as_mut().expect("a writer is not used after finish");
        // Inside the runtime: a full part is spawned onto it by `write`.
        let waited = self.rt.block_on(async {
            upload.wait_for_capacity(2).await?;
            upload.write(buf);
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
        let upload = self.upload.take().expect("finish is called once");
        match self.rt.block_on(upload.finish()) {
            Ok(_) => Ok(()),
            Err(e) => Err(self.error(&e)),
        }
    }
}

impl Drop for S3Writer {
    fn drop(&mut self) {
        if let Some(upload) = self.upload.take() {
            // Best effort: an upload left behind holds no object, only parts a bucket's lifecycle
            // rule may clean up.
            let _ = self.rt.block_on(upload.abort());
        }
    }
}
