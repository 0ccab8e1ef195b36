//! The synchronous side: a runtime per store, and a `Read` over a stream of chunks.

use std::io::{self, Read};
use std::sync::Arc;

use bytes::{Buf, Bytes};
use futures_util::stream::{BoxStream, StreamExt};
use tokio::runtime::Runtime;

/// The runtime a store drives its requests on; readers and writers hold it too, so it lives as
/// long as any of them.
pub(crate) fn runtime() -> io::Result<Arc<Runtime>> {
    // reqwest is built without a crypto provider of its own: use ring's, as PostgreSQL's TLS does.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).thread_name("orgport-objects").enable_all().build()?;
    Ok(Arc::new(rt))
}

/// Blocks on the next chunk only when the last one is used up: one chunk in memory at a time.
pub(crate) struct BlockingReader {
    pub(crate) rt: Arc<Runtime>,
    pub(crate) stream: BoxStream<'static, io::Result<Bytes>>,
    pub(crate) chunk: Bytes,
}

impl Read for BlockingReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.chunk.is_empty() {
            match self.rt.block_on(self.stream.next()) {
                Some(chunk) => self.chunk = chunk?,
                None => {
                    // A finished stream must not be polled again: reads at the end stay at the end.
                    self.stream = futures_util::stream::empty().boxed();
                    return Ok(0);
                }
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk[..n]);
        self.chunk.advance(n);
        Ok(n)
    }
}

/// An error and its causes on one line, for the `reason` of a storage error.
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let s = c.to_string();
        if !text.contains(&s) {
            text.push_str(": ");
            text.push_str(&s);
        }
        cause = c.source();
    }
    text.replace('\n', " ")
}
