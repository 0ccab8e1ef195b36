//! Object and store URLs, and the environment that configures their stores.

use std::fmt;

use orgport_core::store::ObjectStore;
use orgport_core::{Error, Result};

use crate::gcs::{Gcs, GcsConfig};
use crate::local::Local;
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
            _ => {
                return Err(invalid(format!("unsupported scheme `{scheme}://` (use a local path, `s3://BUCKET/KEY` or `gs://BUCKET/KEY`)")))
            }
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

    /// Opens the bucket, configured by the environment variables `env` looks up (see
    /// [`open_store`]).
    pub fn open(&self, env: impl Fn(&str) -> Option<String>) -> Result<Box<dyn ObjectStore>> {
        open_bucket(self.service, &self.bucket, "", env).map_err(|reason| Error::Storage {
            action: "open",
            location: self.to_string(),
            reason,
        })
    }
}

/// Opens the store a URL names: `file://DIR` (`file:///srv/uploads`, or `file://uploads` relative
/// to the current directory; the directory must exist), `s3://BUCKET[/BASE]` or
/// `gs://BUCKET[/BASE]`. Keys are relative to the base path, if any.
///
/// Buckets are configured by the environment variables `env` looks up: for S3
/// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION` (default
/// `us-east-1`) and `AWS_ENDPOINT_URL_S3`, else `AWS_ENDPOINT_URL`; for GCS
/// `GOOGLE_APPLICATION_CREDENTIALS` (a service-account JSON file) and `STORAGE_EMULATOR_HOST`.
pub fn open_store(url: &str, env: impl Fn(&str) -> Option<String>) -> Result<Box<dyn ObjectStore>> {
    let failed = |reason: String| Error::Storage { action: "open", location: url.to_string(), reason };
    let usage = "use `file://DIR`, `s3://BUCKET[/BASE]` or `gs://BUCKET[/BASE]`";
    let Some((scheme, rest)) = url.split_once("://") else { return Err(failed(format!("not a store URL ({usage})"))) };
    let service = match scheme {
        "file" if rest.is_empty() => return Err(failed(format!("a directory is needed ({usage})"))),
        "file" => return Ok(Box::new(Local::open(rest)?)),
        "s3" => Service::S3,
        "gs" => Service::Gcs,
        _ => return Err(failed(format!("unsupported scheme `{scheme}://` ({usage})"))),
    };
    let (bucket, base) = rest.split_once('/').unwrap_or((rest, ""));
    let base = base.trim_end_matches('/');
    if bucket.is_empty() {
        return Err(failed(format!("a bucket is needed ({usage})")));
    }
    if !base.is_empty() && base.split('/').any(|part| matches!(part, "" | "." | "..")) {
        return Err(failed("the base path has an empty, `.` or `..` component".into()));
    }
    open_bucket(service, bucket, base, env).map_err(failed)
}

fn open_bucket(
    service: Service,
    bucket: &str,
    base: &str,
    env: impl Fn(&str) -> Option<String>,
) -> std::result::Result<Box<dyn ObjectStore>, String> {
    let env = |name: &str| env(name).filter(|v| !v.is_empty());
    match service {
        Service::S3 => {
            let (access_key_id, secret_access_key) = match (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
                (Some(id), Some(secret)) => (Some(id), Some(secret)),
                (None, None) => (None, None),
                (Some(_), None) => return Err("`AWS_ACCESS_KEY_ID` is set but `AWS_SECRET_ACCESS_KEY` is not".into()),
                (None, Some(_)) => return Err("`AWS_SECRET_ACCESS_KEY` is set but `AWS_ACCESS_KEY_ID` is not".into()),
            };
            let config = S3Config {
                access_key_id,
                secret_access_key,
                session_token: env("AWS_SESSION_TOKEN"),
                region: env("AWS_REGION").unwrap_or_else(|| "us-east-1".into()),
                endpoint: env("AWS_ENDPOINT_URL_S3").or_else(|| env("AWS_ENDPOINT_URL")),
            };
            Ok(Box::new(S3::open(Root::new("s3", bucket, base), config)?))
        }
        Service::Gcs => {
            let config = GcsConfig { credentials: env("GOOGLE_APPLICATION_CREDENTIALS"), emulator: env("STORAGE_EMULATOR_HOST") };
            Ok(Box::new(Gcs::open(Root::new("gs", bucket, base), config)?))
        }
    }
}

/// The longest object name S3 and GCS take, in bytes of UTF-8, the base path included.
const MAX_NAME: usize = 1024;

/// Where a bucket store's keys live: a bucket and a base path (empty, or without a leading or
/// trailing `/`) that every key is relative to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Root {
    scheme: &'static str,
    pub(crate) bucket: String,
    base: String,
}

impl Root {
    pub(crate) fn new(scheme: &'static str, bucket: &str, base: &str) -> Root {
        Root { scheme, bucket: bucket.to_string(), base: base.to_string() }
    }

    /// `s3://bucket/base`.
    pub(crate) fn describe(&self) -> String {
        match self.base.as_str() {
            "" => format!("{}://{}", self.scheme, self.bucket),
            base => format!("{}://{}/{base}", self.scheme, self.bucket),
        }
    }

    /// The URL of a key's object (or of a prefix, the store's own for none), for messages.
    pub(crate) fn location(&self, key: &str) -> String {
        match key {
            "" => self.describe(),
            key => format!("{}/{key}", self.describe()),
        }
    }

    /// The object's name in the bucket.
    pub(crate) fn name(&self, key: &str) -> String {
        match self.base.as_str() {
            "" => key.to_string(),
            base => format!("{base}/{key}"),
        }
    }

    /// Why the bucket cannot hold an object under `key` by the rules S3 and GCS share, if it
    /// cannot: the key is empty, or the object's name, the base path included, is longer than
    /// either takes ([`MAX_NAME`] bytes of UTF-8).
    pub(crate) fn check(&self, key: &str) -> std::result::Result<(), String> {
        if key.is_empty() {
            return Err("empty".into());
        }
        let (length, service) = (self.name(key).len(), if self.scheme == "s3" { "S3" } else { "GCS" });
        match self.base.as_str() {
            _ if length <= MAX_NAME => Ok(()),
            "" => Err(format!("it is {length} bytes long, and {service} takes names of at most {MAX_NAME}")),
            base => Err(format!("with the base path `{base}/` it is {length} bytes long, and {service} takes names of at most {MAX_NAME}")),
        }
    }

    /// The error of a key [`Root::check`] (or a service's own rules) refused.
    pub(crate) fn invalid(&self, action: &'static str, key: &str, reason: &str) -> Error {
        Error::Storage { action, location: self.location(key), reason: format!("invalid key `{key}`: {reason}") }
    }

    /// The key of an object the bucket lists, None if it is not under the base.
    pub(crate) fn key<'a>(&self, name: &'a str) -> Option<&'a str> {
        match self.base.as_str() {
            "" => Some(name),
            base => name.strip_prefix(base)?.strip_prefix('/'),
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

    #[test]
    fn store_urls_name_a_directory_or_a_bucket_and_a_base() {
        let none = |_: &str| None;
        // Cargo runs unit tests in the package's directory.
        assert_eq!(open_store("file://src", none).unwrap().describe(), "file://src");
        assert_eq!(open_store("file://src/", none).unwrap().describe(), "file://src");
        let s3 = open_store("s3://b/some/base/", none).unwrap();
        assert_eq!(s3.describe(), "s3://b/some/base");
        assert_eq!(
            open_store("gs://b", |name| (name == "STORAGE_EMULATOR_HOST").then(|| "127.0.0.1:9".into())).unwrap().describe(),
            "gs://b"
        );
        for (bad, why) in [
            ("ftp://b", "unsupported scheme"),
            ("uploads", "not a store URL"),
            ("file://", "a directory is needed"),
            ("file://no/such/dir", "no such directory"),
            ("s3://", "a bucket is needed"),
            ("gs:///base", "a bucket is needed"),
            ("s3://b/a//c", "empty, `.` or `..`"),
            ("s3://b/../c", "empty, `.` or `..`"),
        ] {
            let e = open_store(bad, none).err().unwrap_or_else(|| panic!("{bad} opened")).to_string();
            assert!(e.starts_with("cannot open `") && e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn keys_are_relative_to_the_base() {
        let root = Root::new("s3", "b", "org-1/files");
        assert_eq!(
            (root.name("a/b"), root.location("a/b"), root.location("")),
            ("org-1/files/a/b".into(), "s3://b/org-1/files/a/b".into(), "s3://b/org-1/files".into())
        );
        assert_eq!((root.key("org-1/files/a/b"), root.key("org-1/filesX"), root.key("other")), (Some("a/b"), None, None));
        let bare = Root::new("gs", "b", "");
        assert_eq!((bare.name("k"), bare.key("k"), bare.describe()), ("k".into(), Some("k"), "gs://b".into()));
    }

    #[test]
    fn names_are_at_most_1024_bytes_with_the_base_path() {
        let (bare, based) = (Root::new("s3", "b", ""), Root::new("gs", "b", "base"));
        // 1024 bytes in all, some of them two-byte characters: the limit counts bytes.
        let longest = format!("{}{}", "k".repeat(24), "ü".repeat(500));
        assert_eq!(bare.check(&longest), Ok(()));
        assert_eq!(based.check(&longest[5..]), Ok(()), "`base/` and 1019 bytes");
        assert_eq!(bare.check(&format!("{longest}k")), Err("it is 1025 bytes long, and S3 takes names of at most 1024".into()));
        assert_eq!(
            based.check(&longest[4..]),
            Err("with the base path `base/` it is 1025 bytes long, and GCS takes names of at most 1024".into())
        );
        assert_eq!(bare.check(""), Err("empty".into()));
        assert_eq!(based.check(""), Err("empty".into()));
        let e = based.invalid("write", "k", "empty").to_string();
        assert_eq!(e, "cannot write `gs://b/base/k`: invalid key `k`: empty");
    }
}
