//! orgport-objects: archives and an organisation's files in object stores — local directories,
//! S3, GCS.
//!
//! [`open_store`] opens a store from its URL (`file://DIR`, `s3://BUCKET[/BASE]`,
//! `gs://BUCKET[/BASE]`: keys are relative to the base path) as an
//! [`orgport_core::store::ObjectStore`]; [`ObjectUrl`] names one object (`s3://BUCKET/KEY`,
//! `gs://BUCKET/KEY`) and opens its bucket. Buckets are configured from the standard environment
//! variables. The bucket stores are synchronous facades over a tokio runtime each owns (the core
//! and the command line are synchronous): objects stream in and out part by part, so memory does
//! not grow with their size, and an object appears only when its writer is finished. A store
//! copies on the service's side from another of the same kind and service (`copy_from`); the
//! caller streams the rest.
//!
//! ```no_run
//! use std::io::Write;
//! let url = orgport_objects::ObjectUrl::parse("s3://backups/org-1.orgport")?.expect("an object URL");
//! let store = url.open(|name| std::env::var(name).ok())?;
//! let mut out = store.writer(url.key())?;
//! out.write_all(b"the archive")?;
//! out.finish()?;
//!
//! let files = orgport_objects::open_store("gs://uploads/org-1", |name| std::env::var(name).ok())?;
//! for object in files.list("avatars/")? {
//!     println!("{} ({} bytes)", object.key, object.size);
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod blocking;
mod gcs;
mod local;
mod location;
mod s3;

pub use location::{open_store, ObjectUrl};

/// Part size of uploads: S3 wants parts of at least 5 MiB, GCS chunks in multiples of 256 KiB.
/// With at most two parts in flight and one filling, an upload holds about three of these. An
/// object no larger goes in one request.
const PART: usize = 8 << 20;
