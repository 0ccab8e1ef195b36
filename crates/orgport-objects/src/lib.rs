//! orgport-objects: archives read from and written to object stores, S3 and GCS.
//!
//! [`ObjectUrl`] parses `s3://BUCKET/KEY` and `gs://BUCKET/KEY` and opens the bucket as an
//! [`orgport_core::store::ObjectStore`], configured from the standard environment variables.
//! The stores are synchronous facades over a tokio runtime each owns (the core and the command
//! line are synchronous): objects stream in and out part by part, so memory does not grow with
//! their size, and an object appears only when its writer is finished.
//!
//! ```no_run
//! use std::io::Write;
//! let url = orgport_objects::ObjectUrl::parse("s3://backups/org-1.orgport")?.expect("an object URL");
//! let store = url.open(|name| std::env::var(name).ok())?;
//! let mut out = store.writer(url.key())?;
//! out.write_all(b"the archive")?;
//! out.finish()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod blocking;
mod gcs;
mod location;
mod s3;

pub use location::ObjectUrl;

/// Part size of uploads: S3 wants parts of at least 5 MiB, GCS chunks in multiples of 256 KiB.
/// With at most two parts in flight and one filling, an upload holds about three of these.
const PART: usize = 8 << 20;
