//! Reading tables ahead of the export's writer on more connections that share its snapshot.
//!
//! The writer takes the tables one by one, in order, because what it leaves out of one table
//! decides what it cuts in the next. Readers claim the next few tables, run their queries on
//! their own connections and spool the rows to temporary files; the writer replays a spooled
//! table, or reads it itself when no reader has started it. Readers stay within a few tables of
//! the writer, so the disk they use stays bounded by a few tables.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, Write};
use std::path::Path;
use std::sync::{Condvar, Mutex};

use crate::archive::codec;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::select::TableQuery;
use crate::value::Value;

enum Slot {
    Open,
    Reading,
    Ready(Result<Spool>),
    Taken,
}

struct Board {
    slots: Vec<Slot>,
    /// The table the writer is on.
    current: usize,
    stopped: bool,
}

pub(crate) struct ReadAhead {
    board: Mutex<Board>,
    changed: Condvar,
    /// How far past the writer readers may go.
    window: usize,
}

/// One table's rows, as the query returned them, in a temporary file.
pub(crate) struct Spool {
    file: File,
    rows: u64,
}

impl ReadAhead {
    pub(crate) fn new(tables: usize, readers: usize) -> Self {
        let slots = (0..tables).map(|_| Slot::Open).collect();
        // A few tables past the readers' own: the next large table starts while small ones pass.
        let window = if readers == 0 { 0 } else { readers + 3 };
        ReadAhead { board: Mutex::new(Board { slots, current: 0, stopped: false }), changed: Condvar::new(), window }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Board> {
        // The board stays consistent whatever panicked while holding it: every change is one assignment.
        self.board.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The writer's turn for table `i`: its spooled rows, or None when the writer must read it.
    pub(crate) fn take(&self, i: usize) -> Result<Option<Spool>> {
        let mut board = self.lock();
        board.current = i;
        self.changed.notify_all();
        loop {
            match std::mem::replace(&mut board.slots[i], Slot::Taken) {
                Slot::Open => return Ok(None),
                Slot::Ready(spool) => return spool.map(Some),
                Slot::Reading => {
                    board.slots[i] = Slot::Reading;
                    board = self.changed.wait(board).unwrap_or_else(|p| p.into_inner());
                }
                Slot::Taken => return Err(Error::Plan(format!("export: table {i} was read twice"))),
            }
        }
    }

    /// No more tables will be taken: readers finish the query they are on and leave.
    pub(crate) fn stop(&self) {
        self.lock().stopped = true;
        self.changed.notify_all();
    }

    /// A reader's loop: claim the next open table within the window, spool it, repeat.
    pub(crate) fn work(&self, mut reader: Box<dyn Engine + Send>, queries: &[&TableQuery], spool_dir: Option<&Path>) {
        loop {
            let claimed = {
                let mut board = self.lock();
                loop {
                    if board.stopped {
                        return;
                    }
                    let ahead = board.current + 1..(board.current + 1 + self.window).min(board.slots.len());
                    if let Some(i) = ahead.clone().find(|&i| matches!(board.slots[i], Slot::Open)) {
                        board.slots[i] = Slot::Reading;
                        break i;
                    }
                    if !board.slots[board.current..].iter().any(|s| matches!(s, Slot::Open)) {
                        return;
                    }
                    board = self.changed.wait(board).unwrap_or_else(|p| p.into_inner());
                }
            };
            let spooled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| spool(reader.as_mut(), queries[claimed], spool_dir)))
                .unwrap_or_else(|_| Err(Error::Plan("a reader of the export failed unexpectedly".into())));
            self.lock().slots[claimed] = Slot::Ready(spooled);
            self.changed.notify_all();
        }
    }
}

fn spool(reader: &mut dyn Engine, query: &TableQuery, dir: Option<&Path>) -> Result<Spool> {
    let dir = dir.map(Path::to_path_buf).unwrap_or_else(std::env::temp_dir);
    let file = tempfile::tempfile_in(&dir).map_err(|e| Error::io("cannot create a spool file in", &dir, e))?;
    let mut out = BufWriter::with_capacity(1 << 16, file);
    let mut rows = 0;
    reader.query(&query.sql, &query.params, &query.kinds, &mut |values| {
        let bytes = codec::encode(values);
        out.write_all(&(bytes.len() as u32).to_le_bytes()).and_then(|_| out.write_all(&bytes)).map_err(Error::Stream)?;
        rows += 1;
        Ok(())
    })?;
    let mut file = out.into_inner().map_err(|e| Error::Stream(e.into_error()))?;
    file.rewind().map_err(Error::Stream)?;
    Ok(Spool { file, rows })
}

impl Spool {
    /// Hands every spooled row to `on_row`, as the query would have.
    pub(crate) fn replay(self, columns: usize, on_row: &mut dyn FnMut(&[Value]) -> Result<()>) -> Result<()> {
        let mut input = BufReader::with_capacity(1 << 16, self.file);
        let mut bytes = Vec::new();
        for _ in 0..self.rows {
            let mut len = [0u8; 4];
            input.read_exact(&mut len).map_err(Error::Stream)?;
            bytes.resize(u32::from_le_bytes(len) as usize, 0);
            input.read_exact(&mut bytes).map_err(Error::Stream)?;
            on_row(&codec::decode(&bytes, columns).map_err(Error::Stream)?)?;
        }
        Ok(())
    }
}
