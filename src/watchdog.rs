//! Names the items that take too long. Workers register the item they start on ([`Watchdog::track`],
//! released when the returned guard drops); a background thread wakes a few times a second and
//! reports every item running for longer than the threshold, again each time its running time
//! doubles, so a stuck file is named in the log while the run is still going (the decode itself
//! is bounded by [`crate::video::set_item_timeout`]).
//!
//! Dropping the watchdog stops the thread and waits for it a bounded time: a reporter that does
//! not return is left behind rather than blocking the run.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Default threshold: an item running longer than this is named.
pub const DEFAULT_AFTER: Duration = Duration::from_secs(60);

/// How long dropping the watchdog waits for its thread.
const JOIN_WAIT: Duration = Duration::from_secs(5);

type Report = Box<dyn Fn(String) + Send + Sync>;

struct Running {
    item: String,
    since: Instant,
    /// Reports made so far; the next one is due at `after * 2^reported`.
    reported: u32,
}

struct Shared {
    stage: String,
    after: Duration,
    running: Mutex<BTreeMap<u64, Running>>,
    next: AtomicU64,
    report: Report,
}

pub struct Watchdog {
    shared: Arc<Shared>,
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

/// An item being worked on; dropping it tells the watchdog the item is finished.
pub struct Tracked<'a> {
    shared: &'a Shared,
    key: u64,
}

impl Watchdog {
    /// A watchdog for `stage` that logs a warning for items running longer than `after`.
    pub fn start(stage: &str, after: Duration) -> Watchdog {
        Watchdog::with_report(
            stage,
            after,
            Box::new(|line: String| tracing::warn!("{line}")),
        )
    }

    /// [`Watchdog::start`] with the report sent to `report` instead of the log.
    pub fn with_report(stage: &str, after: Duration, report: Report) -> Watchdog {
        let shared = Arc::new(Shared {
            stage: stage.to_string(),
            after,
            running: Mutex::new(BTreeMap::new()),
            next: AtomicU64::new(0),
            report,
        });
        let (stop, stopped) = mpsc::channel::<()>();
        let tick = (after / 4).clamp(Duration::from_millis(10), Duration::from_millis(500));
        let watched = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name(format!("{stage}-watchdog"))
            .spawn(move || loop {
                match stopped.recv_timeout(tick) {
                    Err(RecvTimeoutError::Timeout) => watched.check(),
                    // Told to stop, or the watchdog is gone.
                    _ => return,
                }
            })
            .ok();
        if thread.is_none() {
            tracing::debug!("{stage}: no watchdog thread could be started");
        }
        Watchdog {
            shared,
            stop: Some(stop),
            thread,
        }
    }

    /// Registers `item` (a unit id, a path) as running until the guard drops.
    pub fn track(&self, item: &str) -> Tracked<'_> {
        let key = self.shared.next.fetch_add(1, Ordering::Relaxed);
        self.shared.lock().insert(
            key,
            Running {
                item: item.to_string(),
                since: Instant::now(),
                reported: 0,
            },
        );
        Tracked {
            shared: &self.shared,
            key,
        }
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Running>> {
        // A panic while holding the lock leaves a map that is still consistent.
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn check(&self) {
        let mut due = Vec::new();
        for r in self.lock().values_mut() {
            let elapsed = r.since.elapsed();
            let threshold = self.after.saturating_mul(1 << r.reported.min(20));
            if elapsed >= threshold {
                r.reported += 1;
                due.push(format!(
                    "{}: still working on {} after {:.0} s",
                    self.stage,
                    r.item,
                    elapsed.as_secs_f64()
                ));
            }
        }
        // Reported outside the lock, so a slow log never blocks the workers.
        for line in due {
            (self.report)(line);
        }
    }
}

impl Drop for Tracked<'_> {
    fn drop(&mut self) {
        self.shared.lock().remove(&self.key);
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let until = Instant::now() + JOIN_WAIT;
            while !thread.is_finished() && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(5));
            }
            if thread.is_finished() {
                let _ = thread.join();
            } else {
                tracing::debug!("{}: watchdog thread left running", self.shared.stage);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collecting(after: Duration) -> (Watchdog, Arc<Mutex<Vec<String>>>) {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&lines);
        let w = Watchdog::with_report(
            "keyframes",
            after,
            Box::new(move |l| sink.lock().unwrap().push(l)),
        );
        (w, lines)
    }

    #[test]
    fn names_a_slow_item_and_not_a_finished_one() {
        let (w, lines) = collecting(Duration::from_millis(30));
        drop(w.track("quick.mp4"));
        let slow = w.track("slow.mp4");
        // Waits until the report arrives (or fails after a generous bound).
        for _ in 0..400 {
            if !lines.lock().unwrap().is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        drop(slow);
        drop(w);
        let lines = lines.lock().unwrap();
        assert!(!lines.is_empty(), "no report");
        assert!(
            lines
                .iter()
                .all(|l| l.starts_with("keyframes: still working on slow.mp4 after")),
            "{lines:?}"
        );
    }

    #[test]
    fn reports_again_only_as_the_time_doubles() {
        let w = Watchdog::with_report("s", Duration::from_secs(3600), Box::new(|_| {}));
        let _t = w.track("x");
        let mut map = w.shared.lock();
        let r = map.values_mut().next().unwrap();
        r.since = Instant::now() - Duration::from_secs(3 * 3600);
        drop(map);
        let count = Arc::new(AtomicU64::new(0));
        let c = Arc::clone(&count);
        let shared = Shared {
            stage: "s".into(),
            after: Duration::from_secs(3600),
            running: Mutex::new(std::mem::take(&mut *w.shared.lock())),
            next: AtomicU64::new(0),
            report: Box::new(move |_| {
                c.fetch_add(1, Ordering::Relaxed);
            }),
        };
        // 3 h with a 1 h threshold: due at 1 h and at 2 h, not yet at 4 h.
        for _ in 0..5 {
            shared.check();
        }
        assert_eq!(count.load(Ordering::Relaxed), 2);
    }
}
