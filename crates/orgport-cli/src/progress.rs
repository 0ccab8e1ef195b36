//! Progress bars on stderr when it is a terminal; nothing otherwise.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};
use orgport_core::progress::Progress;

pub struct Bars {
    bar: Mutex<Option<ProgressBar>>,
    enabled: bool,
    /// Bytes of files done in the current step, shown beside the count.
    bytes: AtomicU64,
    label: Mutex<String>,
}

impl Bars {
    pub fn new() -> Self {
        Bars { bar: Mutex::new(None), enabled: std::io::stderr().is_terminal(), bytes: AtomicU64::new(0), label: Mutex::new(String::new()) }
    }
}

impl Progress for Bars {
    fn begin(&self, phase: &str, table: &str, total: Option<u64>) {
        if !self.enabled {
            return;
        }
        let unit = if phase.contains("files") { "files" } else { "rows" };
        let bar = match total {
            Some(n) => ProgressBar::with_draw_target(Some(n), ProgressDrawTarget::stderr()).with_style(
                ProgressStyle::with_template(&format!("{{prefix:>9}} {{msg:30}} [{{bar:30}}] {{pos}}/{{len}} {unit} {{per_sec}}"))
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            ),
            None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()).with_style(
                ProgressStyle::with_template(&format!("{{prefix:>9}} {{msg:30}} {{pos}} {unit} {{per_sec}}"))
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            ),
        };
        bar.set_prefix(phase.to_string());
        bar.set_message(table.to_string());
        self.bytes.store(0, Ordering::Relaxed);
        if let Ok(mut label) = self.label.lock() {
            *label = table.to_string();
        }
        if let Ok(mut slot) = self.bar.lock() {
            *slot = Some(bar);
        }
    }

    fn rows(&self, n: u64) {
        if let Ok(slot) = self.bar.lock() {
            if let Some(bar) = slot.as_ref() {
                bar.inc(n);
            }
        }
    }

    fn bytes(&self, n: u64) {
        let total = self.bytes.fetch_add(n, Ordering::Relaxed) + n;
        if let (Ok(slot), Ok(label)) = (self.bar.lock(), self.label.lock()) {
            if let Some(bar) = slot.as_ref() {
                bar.set_message(format!("{label} {}", HumanBytes(total)));
            }
        }
    }

    fn end(&self) {
        if let Ok(mut slot) = self.bar.lock() {
            if let Some(bar) = slot.take() {
                bar.finish_and_clear();
            }
        }
    }

    /// Notes go to stderr, terminal or not: they say how the work was done.
    fn note(&self, message: &str) {
        eprintln!("{message}");
    }
}
