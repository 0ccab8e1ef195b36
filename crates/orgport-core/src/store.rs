//! Object stores: where archives and an organisation's files are when they are not in the archive.
//!
//! One trait per kind of backend, as for engines: the core streams objects through these and
//! knows no service (local directories, S3, GCS: `orgport-objects`). Keys are the object names
//! within the store, relative to the root it was opened at.

use std::any::Any;
use std::io::{Read, Write};

use crate::Result;

/// A bucket (or a directory, or a path within a bucket) holding objects by key.
pub trait ObjectStore: Send + Sync {
    /// The store's root as a URL, such as `s3://bucket/base`: `{describe}/{key}` names an object.
    fn describe(&self) -> String;

    /// Streams an object; an object that does not exist is an error naming it.
    fn reader(&self, key: &str) -> Result<Box<dyn Read + Send>>;

    /// Starts writing an object. It appears only when [`ObjectWriter::finish`] succeeds.
    fn writer(&self, key: &str) -> Result<Box<dyn ObjectWriter>>;

    /// The object's size in bytes, or None if it does not exist.
    fn size(&self, key: &str) -> Result<Option<u64>>;

    /// Fails, naming the key, when this store cannot hold an object under `key`: the import asks
    /// for every file before it writes the first. Any key by default.
    fn check_key(&self, _key: &str) -> Result<()> {
        Ok(())
    }

    /// Removes what writes of `key` killed midway (SIGKILL, power loss) left in the store — never
    /// an object — and the directories that leaves empty; how many such leftovers it removed.
    /// A `key` ending in `/` names a directory: what any killed write left in it.
    /// `import --cleanup` calls it for the keys of the imports it cleans up, once their objects
    /// are gone. A directory keeps a temporary file beside the object's place; S3 keeps the
    /// multipart upload, and bills its parts, until it is aborted. Nothing by default, which
    /// suits GCS: an upload session expires by itself, and no unfinished upload is an object.
    fn remove_leftovers(&self, _key: &str) -> Result<usize> {
        Ok(0)
    }

    /// Every object whose key starts with `prefix`, in key order.
    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>>;

    /// Removes an object; one that does not exist is no error.
    fn delete(&self, key: &str) -> Result<()>;

    /// Copies `source`'s object `from` to `to` in this store on the service's side, without the
    /// bytes passing through orgport. `Ok(false)` when `source` is not on the same service
    /// (another kind of store, endpoint or account): the caller then streams the object.
    fn copy_from(&self, source: &dyn ObjectStore, from: &str, to: &str) -> Result<bool>;

    /// For [`ObjectStore::copy_from`], which needs to know whether `source` is its own kind.
    fn as_any(&self) -> &dyn Any;
}

/// An object found by [`ObjectStore::list`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub key: String,
    pub size: u64,
}

/// An object being written. Dropped without [`finish`](ObjectWriter::finish), the upload is
/// abandoned and no object appears, so a failed export never leaves one that looks complete.
pub trait ObjectWriter: Write + Send {
    /// Uploads what is buffered and makes the object appear.
    fn finish(self: Box<Self>) -> Result<()>;
}

/// Opens a store from a URL (`file://DIR`, `s3://BUCKET[/BASE]`, `gs://BUCKET[/BASE]`): the
/// caller's, which knows the services and their credentials.
pub type StoreOpener<'a> = dyn Fn(&str) -> Result<Box<dyn ObjectStore>> + Sync + 'a;
