//! Progress reporting: the library says what it is doing, the caller decides how to show it.

pub trait Progress {
    /// A new step begins: `phase` (export, check, import, verify) on `table`, with the number of
    /// rows expected when known.
    fn begin(&self, _phase: &str, _table: &str, _total: Option<u64>) {}
    /// Rows done; for a step on files, files done.
    fn rows(&self, _n: u64) {}
    /// Bytes of files done.
    fn bytes(&self, _n: u64) {}
    fn end(&self) {}
    /// Something worth a line of its own, such as how the work is spread.
    fn note(&self, _message: &str) {}
    /// Whether the caller wants the work stopped. An export asks between rows; an import
    /// between rows and before it writes files, and then fails with [`crate::Error::Cancelled`] through its usual failure
    /// path: the transaction rolled back, files written removed, the target as it was.
    fn cancelled(&self) -> bool {
        false
    }
}

/// Shows nothing.
pub struct Quiet;

impl Progress for Quiet {}
