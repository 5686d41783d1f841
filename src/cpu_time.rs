//! CPU time this process has used (user + system, every thread), for the CPU time per stage in
//! `timings.json`: the difference across a stage over its wall time tells how well it used the
//! cores.

/// Seconds of CPU used so far by all threads of this process, living or ended, and by its CLIP
/// helper process (as the helper last reported it); None where the system cannot tell.
#[cfg(unix)]
pub fn process_cpu_s() -> Option<f64> {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: `usage` points to writable memory the size of a `rusage`, which getrusage fills on
    // success; RUSAGE_SELF is always a valid `who`.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: getrusage returned 0, so it wrote the whole struct (and it was zeroed before).
    let usage = unsafe { usage.assume_init() };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Some(secs(usage.ru_utime) + secs(usage.ru_stime) + crate::features::helper_cpu_s())
}

#[cfg(not(unix))]
pub fn process_cpu_s() -> Option<f64> {
    None
}

#[cfg(test)]
mod tests {
    #[test]
    fn cpu_time_grows_with_work() {
        let before = super::process_cpu_s().expect("getrusage");
        let start = std::time::Instant::now();
        let mut x = 0u64;
        // Busy until the clock moves (a few scheduler ticks at most), for 5 s at the very most.
        while super::process_cpu_s().unwrap() <= before && start.elapsed().as_secs() < 5 {
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
            }
        }
        let after = super::process_cpu_s().unwrap();
        assert!(after > before, "{before} -> {after}");
    }
}
