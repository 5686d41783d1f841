//! The request pool: a fixed set of worker threads, each starting the next request as soon as
//! its last one finished (no batches), within `concurrency`, the two rate limits and the
//! budget; retries wait in a queue without holding a slot.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use super::client::{Attempt, Cause, Client};
use super::stats::Stats;
use super::store::{Record, Store};
use crate::error::Result;

/// One request to make.
pub struct Job {
    pub key: String,
    /// Estimated tokens (prompt + max_tokens), counted against the tokens-per-window limit.
    pub est_tokens: u64,
}

/// How a job ended in this pass.
#[derive(Debug, Clone)]
pub enum JobResult {
    /// A kept response (answer or refusal), stored.
    Done(Record),
    /// Attempts ran out on retryable failures (not stored).
    Failed {
        cause: Cause,
        status: Option<u16>,
        attempts: u32,
        excerpt: String,
    },
    /// Not started or not finished: the budget was reached or the run was cancelled.
    NotSent,
}

/// Why a pass stopped before every job was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stop {
    Budget,
    Cancelled,
}

/// The limits of a pass.
pub struct Limits {
    pub concurrency: usize,
    pub requests_per_window: u32,
    pub tokens_per_window: u64,
    pub window: Duration,
    pub max_attempts: u32,
    pub backoff: Duration,
    pub max_backoff: Duration,
}

/// Rate window and budget, kept across the passes of one run.
pub struct Limiter {
    starts: VecDeque<(Instant, u64)>,
    /// HTTP requests sent so far in this run.
    pub sent: u64,
    /// The budget (0: none).
    pub max_requests: u64,
}

impl Limiter {
    pub fn new(max_requests: u64) -> Limiter {
        Limiter {
            starts: VecDeque::new(),
            sent: 0,
            max_requests,
        }
    }

    fn budget_left(&self) -> bool {
        self.max_requests == 0 || self.sent < self.max_requests
    }

    /// `None`: may start now; `Some(d)`: wait `d` first.
    fn wait_for(&mut self, now: Instant, limits: &Limits, tokens: u64) -> Option<Duration> {
        while let Some(&(t, _)) = self.starts.front() {
            if now.duration_since(t) >= limits.window {
                self.starts.pop_front();
            } else {
                break;
            }
        }
        let over_requests = limits.requests_per_window > 0
            && self.starts.len() >= limits.requests_per_window as usize;
        let used: u64 = self.starts.iter().map(|s| s.1).sum();
        // A request bigger than the whole token limit still goes, alone in its window.
        let over_tokens = limits.tokens_per_window > 0
            && !self.starts.is_empty()
            && used + tokens > limits.tokens_per_window;
        if !(over_requests || over_tokens) {
            return None;
        }
        let oldest = self.starts.front().expect("non-empty when over a limit").0;
        Some((oldest + limits.window).saturating_duration_since(now))
    }
}

struct Sched<'a> {
    fresh: VecDeque<usize>,
    /// Retries: (not before, job).
    delayed: Vec<(Instant, usize)>,
    attempts: Vec<u32>,
    results: Vec<Option<JobResult>>,
    remaining: usize,
    in_flight: usize,
    stop: Option<Stop>,
    limiter: &'a mut Limiter,
    stats: &'a mut Stats,
    rng: u64,
}

/// The longest a worker sleeps before looking at the cancel flag again.
const POLL: Duration = Duration::from_millis(50);

/// Runs the jobs; `body(i)` builds job i's request body. `on_done(i, result)` is called for
/// every job that ends in this pass (not for `NotSent`). Returns the results in job order and
/// why the pass stopped early, if it did.
#[allow(clippy::too_many_arguments)]
pub fn run(
    jobs: &[Job],
    body: &(dyn Fn(usize) -> Vec<u8> + Sync),
    client: &Client,
    store: &Store,
    limits: &Limits,
    limiter: &mut Limiter,
    stats: &mut Stats,
    cancel: &AtomicBool,
    on_done: &(dyn Fn(usize, &JobResult) + Sync),
) -> Result<(Vec<JobResult>, Option<Stop>)> {
    if jobs.is_empty() {
        return Ok((Vec::new(), None));
    }
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1);
    let sched = Mutex::new(Sched {
        fresh: (0..jobs.len()).collect(),
        delayed: Vec::new(),
        attempts: vec![0; jobs.len()],
        results: vec![None; jobs.len()],
        remaining: jobs.len(),
        in_flight: 0,
        stop: None,
        limiter,
        stats,
        rng: seed,
    });
    let wake = Condvar::new();
    let error: Mutex<Option<crate::Error>> = Mutex::new(None);
    let workers = limits.concurrency.min(jobs.len()).max(1);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                worker(
                    jobs, body, client, store, limits, &sched, &wake, cancel, on_done, &error,
                )
            });
        }
    });
    if let Some(e) = error.into_inner().expect("error lock") {
        return Err(e);
    }
    let s = sched.into_inner().expect("pool lock");
    let results = s
        .results
        .into_iter()
        .map(|r| r.unwrap_or(JobResult::NotSent))
        .collect();
    Ok((results, s.stop))
}

#[allow(clippy::too_many_arguments)]
fn worker(
    jobs: &[Job],
    body: &(dyn Fn(usize) -> Vec<u8> + Sync),
    client: &Client,
    store: &Store,
    limits: &Limits,
    sched: &Mutex<Sched>,
    wake: &Condvar,
    cancel: &AtomicBool,
    on_done: &(dyn Fn(usize, &JobResult) + Sync),
    error: &Mutex<Option<crate::Error>>,
) {
    loop {
        // Take the next job that may start now.
        let job = {
            let mut s = sched.lock().expect("pool lock");
            loop {
                if s.remaining == 0 || s.stop.is_some() {
                    wake.notify_all();
                    return;
                }
                if cancel.load(Ordering::Relaxed) {
                    s.stop = Some(Stop::Cancelled);
                    continue;
                }
                if !s.limiter.budget_left() {
                    s.stop = Some(Stop::Budget);
                    continue;
                }
                let now = Instant::now();
                let due = s
                    .delayed
                    .iter()
                    .enumerate()
                    .filter(|(_, (t, _))| *t <= now)
                    .min_by_key(|(_, (t, _))| *t)
                    .map(|(i, _)| i);
                let next = due
                    .map(|i| s.delayed[i].1)
                    .or_else(|| s.fresh.front().copied());
                let Some(i) = next else {
                    // Nothing ready: wait for a retry to fall due or a job to finish.
                    let until = s.delayed.iter().map(|d| d.0).min();
                    let wait = until.map_or(POLL, |t| t.saturating_duration_since(now).min(POLL));
                    s = wake
                        .wait_timeout(s, wait.max(Duration::from_millis(1)))
                        .expect("pool lock")
                        .0;
                    continue;
                };
                let tokens = jobs[i].est_tokens;
                if let Some(d) = s.limiter.wait_for(now, limits, tokens) {
                    s = wake
                        .wait_timeout(s, d.min(POLL).max(Duration::from_millis(1)))
                        .expect("pool lock")
                        .0;
                    continue;
                }
                match due {
                    Some(d) => {
                        s.delayed.swap_remove(d);
                    }
                    None => {
                        s.fresh.pop_front();
                    }
                }
                s.limiter.starts.push_back((now, tokens));
                s.limiter.sent += 1;
                s.attempts[i] += 1;
                s.in_flight += 1;
                s.stats.requests_sent += 1;
                if s.attempts[i] > 1 {
                    s.stats.retries += 1;
                }
                s.stats.in_flight_peak = s.stats.in_flight_peak.max(s.in_flight as u64);
                break i;
            }
        };

        let bytes = body(job);
        let started = Instant::now();
        let attempt = client.send(&bytes);
        let latency = started.elapsed();

        let mut s = sched.lock().expect("pool lock");
        s.in_flight -= 1;
        s.stats.latency.add(latency);
        let attempts = s.attempts[job];
        let key = &jobs[job].key;
        let result = match attempt {
            Attempt::Answer {
                status,
                content,
                usage,
            } => {
                s.stats.responses_ok += 1;
                if let Some(u) = usage {
                    s.stats.prompt_tokens += u.prompt_tokens;
                    s.stats.completion_tokens += u.completion_tokens;
                }
                Some(JobResult::Done(Record {
                    key: key.clone(),
                    status,
                    content: Some(client.key().redact(&content)),
                    error: None,
                    attempts,
                    usage,
                }))
            }
            Attempt::Refused { status, excerpt } => {
                s.stats.count_failure(Cause::ClientError);
                Some(JobResult::Done(Record {
                    key: key.clone(),
                    status,
                    content: None,
                    error: Some(excerpt),
                    attempts,
                    usage: None,
                }))
            }
            Attempt::Retry {
                cause,
                status,
                retry_after,
                excerpt,
            } => {
                s.stats.count_failure(cause);
                if attempts < limits.max_attempts {
                    let delay = backoff(limits, attempts, retry_after, &mut s.rng);
                    s.delayed.push((Instant::now() + delay, job));
                    None
                } else {
                    Some(JobResult::Failed {
                        cause,
                        status,
                        attempts,
                        excerpt,
                    })
                }
            }
        };
        let Some(result) = result else {
            wake.notify_all();
            continue;
        };
        drop(s);
        // Kept before it counts as done: a process killed after this line resends nothing.
        if let JobResult::Done(record) = &result {
            if let Err(e) = store.put(record.clone()) {
                let mut s = sched.lock().expect("pool lock");
                s.stop = Some(Stop::Cancelled);
                error.lock().expect("error lock").get_or_insert(e);
                wake.notify_all();
                return;
            }
        }
        on_done(job, &result);
        let mut s = sched.lock().expect("pool lock");
        s.results[job] = Some(result);
        s.remaining -= 1;
        wake.notify_all();
    }
}

/// Exponential backoff with jitter (a random half to whole of the doubled delay), never shorter
/// than the server's `Retry-After`.
fn backoff(
    limits: &Limits,
    attempts: u32,
    retry_after: Option<Duration>,
    rng: &mut u64,
) -> Duration {
    let exp = limits
        .backoff
        .saturating_mul(1u32 << (attempts.saturating_sub(1)).min(20))
        .min(limits.max_backoff);
    let r = super::prompt::splitmix64(rng);
    let jitter = 0.5 + (r >> 11) as f64 / (1u64 << 53) as f64 / 2.0;
    let d = exp.mul_f64(jitter);
    match retry_after {
        Some(ra) => d.max(ra),
        None => d,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(rpm: u32, tpm: u64) -> Limits {
        Limits {
            concurrency: 4,
            requests_per_window: rpm,
            tokens_per_window: tpm,
            window: Duration::from_secs(10),
            max_attempts: 3,
            backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(1000),
        }
    }

    #[test]
    fn limiter_counts_requests_and_tokens_in_the_window() {
        let l = limits(2, 0);
        let mut lim = Limiter::new(0);
        let t0 = Instant::now();
        assert_eq!(lim.wait_for(t0, &l, 1), None);
        lim.starts.push_back((t0, 1));
        lim.starts.push_back((t0, 1));
        let w = lim.wait_for(t0 + Duration::from_secs(3), &l, 1).unwrap();
        assert_eq!(w, Duration::from_secs(7));
        assert_eq!(lim.wait_for(t0 + Duration::from_secs(10), &l, 1), None);
        let l = limits(0, 100);
        let mut lim = Limiter::new(0);
        assert_eq!(lim.wait_for(t0, &l, 500), None, "alone in its window");
        lim.starts.push_back((t0, 60));
        assert_eq!(lim.wait_for(t0, &l, 40), None);
        assert!(lim.wait_for(t0, &l, 41).is_some());
    }

    #[test]
    fn backoff_doubles_with_jitter_and_honours_retry_after() {
        let l = limits(0, 0);
        let mut rng = 7;
        for attempt in 1..6 {
            let d = backoff(&l, attempt, None, &mut rng);
            let full = (100u64 << (attempt - 1)).min(1000);
            assert!(
                d >= Duration::from_millis(full / 2) && d <= Duration::from_millis(full),
                "{d:?}"
            );
        }
        let d = backoff(&l, 1, Some(Duration::from_secs(5)), &mut rng);
        assert_eq!(d, Duration::from_secs(5));
    }

    #[test]
    fn budget() {
        let mut lim = Limiter::new(2);
        assert!(lim.budget_left());
        lim.sent = 2;
        assert!(!lim.budget_left());
        assert!(Limiter::new(0).budget_left());
    }
}
