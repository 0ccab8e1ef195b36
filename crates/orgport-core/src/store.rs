//! Object stores: where an archive is read from or written to when it is not a local file.
//!
//! One trait per kind of backend, as for engines: the core streams archives through these and
//! knows no service (S3, GCS: `orgport-objects`). Keys are the object names within the store.

use std::io::{Read, Write};

use crate::Result;

/// A bucket (or the like) holding objects by key.
pub trait ObjectStore: Send + Sync {
    /// The store as a URL prefix, such as `s3://bucket`: `{describe}/{key}` names an object.
    fn describe(&self) -> String;

    /// Streams an object; an object that does not exist is an error naming it.
    fn reader(&self, key: &str) -> Result<Box<dyn Read + Send>>;

    /// Starts writing an object. It appears only when [`ObjectWriter::finish`] succeeds.
    fn writer(&self, key: &str) -> Result<Box<dyn ObjectWriter>>;

    /// The object's size in bytes, or None if it does not exist.
    fn size(&self, key: &str) -> Result<Option<u64>>;
}

/// An object being written. Dropped without [`finish`](ObjectWriter::finish), the upload is
/// abandoned and no object appears, so a failed export never leaves one that looks complete.
pub trait ObjectWriter: Write + Send {
    /// Uploads what is buffered and makes the object appear.
    fn finish(self: Box<Self>) -> Result<()>;
}
