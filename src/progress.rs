//! Progress reporting on stderr: indicatif bars, JSON lines for logs, or nothing.
//! stdout stays free for machine-readable output.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProgressMode {
    /// Interactive bars (only when stderr is a terminal; otherwise nothing).
    Bar,
    /// One JSON object per line on stderr, at most one per second per stage, plus start/finish.
    Jsonl,
    /// Nothing.
    None,
}

/// A handle to report progress of one stage over `total` items.
#[derive(Clone)]
pub struct Progress {
    inner: Arc<Inner>,
}

struct Inner {
    stage: String,
    total: u64,
    done: AtomicU64,
    bar: Option<ProgressBar>,
    jsonl: bool,
    last_line: Mutex<Instant>,
}

impl Progress {
    pub fn new(mode: ProgressMode, stage: &str, total: u64) -> Progress {
        let bar = match mode {
            ProgressMode::Bar => {
                let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
                bar.set_style(
                    ProgressStyle::with_template(
                        "{prefix:>10} [{bar:30}] {pos}/{len} {per_sec} eta {eta} {msg}",
                    )
                    .expect("valid template")
                    .progress_chars("=> "),
                );
                bar.set_prefix(stage.to_string());
                Some(bar)
            }
            _ => None,
        };
        let p = Progress {
            inner: Arc::new(Inner {
                stage: stage.to_string(),
                total,
                done: AtomicU64::new(0),
                bar,
                jsonl: mode == ProgressMode::Jsonl,
                last_line: Mutex::new(Instant::now()),
            }),
        };
        p.line("start", 0);
        p
    }

    pub fn inc(&self, n: u64) {
        let done = self.inner.done.fetch_add(n, Ordering::Relaxed) + n;
        if let Some(bar) = &self.inner.bar {
            bar.set_position(done);
        }
        if self.inner.jsonl {
            let mut last = self.inner.last_line.lock().expect("progress lock");
            if last.elapsed() >= Duration::from_secs(1) {
                *last = Instant::now();
                drop(last);
                self.line("progress", done);
            }
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.inner.bar {
            bar.finish_and_clear();
        }
        self.line("finish", self.inner.done.load(Ordering::Relaxed));
    }

    fn line(&self, event: &str, done: u64) {
        if self.inner.jsonl {
            let line = serde_json::json!({
                "event": event,
                "stage": self.inner.stage,
                "done": done,
                "total": self.inner.total,
            });
            let _ = writeln!(std::io::stderr().lock(), "{line}");
        }
    }
}
