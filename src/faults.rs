//! A crash on purpose, for testing resumption: `MIMICIT_FAIL_AFTER=<stage>:<n>` makes the process
//! abort (`std::process::abort`, as abrupt as a kill: no destructor, no flush, no cleanup) right
//! after the n-th file that stage finished writing, counting the manifest saved before the stage
//! starts. Points between two writes are where a killed run leaves its state, so the tests can
//! stop a run at each of them deterministically and check that the next run ends with the same
//! bytes as an uninterrupted one. Without the variable nothing is counted.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

/// The environment variable that arms the crash.
pub const ENV: &str = "MIMICIT_FAIL_AFTER";

struct Plan {
    stage: String,
    after: u64,
}

fn plan() -> Option<&'static Plan> {
    static PLAN: OnceLock<Option<Plan>> = OnceLock::new();
    PLAN.get_or_init(|| {
        let raw = std::env::var(ENV).ok()?;
        match parse(&raw) {
            Some(plan) => Some(plan),
            None => {
                eprintln!("mimicit: ignoring {ENV}={raw}: expected <stage>:<n>, n >= 1");
                None
            }
        }
    })
    .as_ref()
}

fn parse(raw: &str) -> Option<Plan> {
    let (stage, n) = raw.split_once(':')?;
    let after = n.trim().parse().ok().filter(|n| *n >= 1)?;
    Some(Plan {
        stage: stage.trim().to_string(),
        after,
    })
}

static CURRENT: Mutex<Option<&'static str>> = Mutex::new(None);
static WRITES: AtomicU64 = AtomicU64::new(0);

/// Tells which stage the files written from now on belong to (`None`: no stage).
pub fn enter_stage(stage: Option<&'static str>) {
    if plan().is_none() {
        return;
    }
    *CURRENT.lock().unwrap_or_else(|e| e.into_inner()) = stage;
    WRITES.store(0, Ordering::SeqCst);
}

/// Called after each finished file write; aborts the process at the armed point.
pub fn file_written(path: &std::path::Path) {
    let Some(plan) = plan() else {
        return;
    };
    let current = *CURRENT.lock().unwrap_or_else(|e| e.into_inner());
    if current != Some(plan.stage.as_str()) {
        return;
    }
    if WRITES.fetch_add(1, Ordering::SeqCst) + 1 == plan.after {
        eprintln!(
            "mimicit: {ENV}: aborting after write {} of stage {} ({})",
            plan.after,
            plan.stage,
            path.display()
        );
        std::process::abort();
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn plan_syntax() {
        let p = super::parse("keyframes:7").unwrap();
        assert_eq!((p.stage.as_str(), p.after), ("keyframes", 7));
        assert!(super::parse("keyframes").is_none());
        assert!(super::parse("keyframes:0").is_none());
        assert!(super::parse("keyframes:x").is_none());
    }
}
