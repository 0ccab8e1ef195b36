//! Object URLs, and the environment that configures their stores.

use std::fmt;

use orgport_core::store::ObjectStore;
use orgport_core::{Error, Result};

use crate::gcs::{Gcs, GcsConfig};
use crate::s3::{S3Config, S3};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Service {
    S3,
    Gcs,
}

/// `s3://BUCKET/KEY` or `gs://BUCKET/KEY`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectUrl {
    service: Service,
    bucket: String,
    key: String,
}

impl ObjectUrl {
    /// The URL `text` names, or None when it has no `scheme://` (a local path). Another scheme,
    /// or a URL without a bucket or key, is an error.
    pub fn parse(text: &str) -> Result<Option<ObjectUrl>> {
        let Some((scheme, rest)) = text.split_once("://") else { return Ok(None) };
        let invalid = |reason: String| Error::Storage { action: "use", location: text.to_string(), reason };
        let service = match scheme {
            "s3" => Service::S3,
            "gs" => Service::Gcs,
            _ => return Err(invalid(format!("unsupported scheme `{scheme}://` (use a local path, `s3://BUCKET/KEY` or `gs://BUCKET/KEY`)"))),
        };
        match rest.split_once('/') {
            Some((bucket, key)) if !bucket.is_empty() && !key.is_empty() && !key.ends_with('/') => {
                Ok(Some(ObjectUrl { service, bucket: bucket.to_string(), key: key.to_string() }))
            }
            _ => Err(invalid(format!("a bucket and an object key are needed: `{scheme}://BUCKET/KEY`"))),
        }
    }

    /// The object's key within its bucket.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Opens the bucket, configured by the environment variables `env` looks up: for S3
    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION` (default
    /// `us-east-1`) and `AWS_ENDPOINT_URL_S3`, else `AWS_ENDPOINT_URL`; for GCS
    /// `GOOGLE_APPLICATION_CREDENTIALS` (a service-account JSON file) and `STORAGE_EMULATOR_HOST`.
    pub fn open(&self, env: impl Fn(&str) -> Option<String>) -> Result<Box<dyn ObjectStore>> {
        let env = |name: &str| env(name).filter(|v| !v.is_empty());
        let failed = |reason: String| Error::Storage { action: "open", location: self.to_string(), reason };
        match self.service {
            Service::S3 => {
                let (access_key_id, secret_access_key) = match (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
                    (Some(id), Some(secret)) => (Some(id), Some(secret)),
                    (None, None) => (None, None),
                    (Some(_), None) => return Err(failed("`AWS_ACCESS_KEY_ID` is set but `AWS_SECRET_ACCESS_KEY` is not".into())),
                    (None, Some(_)) => return Err(failed("`AWS_SECRET_ACCESS_KEY` is set but `AWS_ACCESS_KEY_ID` is not".into())),
                };
                let config = S3Config {
                    access_key_id,
                    secret_access_key,
                    session_token: env("AWS_SESSION_TOKEN"),
                    region: env("AWS_REGION").unwrap_or_else(|| "us-east-1".into()),
                    endpoint: env("AWS_ENDPOINT_URL_S3").or_else(|| env("AWS_ENDPOINT_URL")),
                };
                Ok(Box::new(S3::open(&self.bucket, config).map_err(failed)?))
            }
            Service::Gcs => {
                let config = GcsConfig {
                    credentials: env("GOOGLE_APPLICATION_CREDENTIALS"),
                    emulator: env("STORAGE_EMULATOR_HOST"),
                };
                Ok(Box::new(Gcs::open(&self.bucket, config).map_err(failed)?))
            }
        }
    }
}

impl fmt::Display for ObjectUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.service {
            Service::S3 => "s3",
            Service::Gcs => "gs",
        };
        write!(f, "{scheme}://{}/{}", self.bucket, self.key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_a_bucket_and_a_key_and_paths_are_not_urls() {
        let u = ObjectUrl::parse("s3://b/dir/org-1.orgport").unwrap().unwrap();
        assert_eq!((u.service, u.bucket.as_str(), u.key()), (Service::S3, "b", "dir/org-1.orgport"));
        assert_eq!(u.to_string(), "s3://b/dir/org-1.orgport");
        assert_eq!(ObjectUrl::parse("gs://b/k").unwrap().unwrap().to_string(), "gs://b/k");
        assert_eq!(ObjectUrl::parse("dir/org-1.orgport").unwrap(), None);
        for bad in ["s3://b", "s3://b/", "gs:///k", "s3://b/dir/", "gcs://b/k", "file:///tmp/a"] {
            let e = ObjectUrl::parse(bad).unwrap_err().to_string();
            assert!(e.starts_with(&format!("cannot use `{bad}`: ")), "{e}");
        }
    }
}
