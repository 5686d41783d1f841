//! One writer per run folder: `OUT/.mimicit.lock` (and `OUT/partitions/{i}-of-{N}/.mimicit.lock`
//! for a partition) is held by the process that writes there, from its first write to its last
//! (the report included). A second writer waits for it, saying who holds it, or with
//! `--no-wait` stops with an error naming the holder. Readers (`verify`, `report`) never take
//! it.
//!
//! What the lock relies on, so that it also works on shared storage (NFS v3/v4, Lustre, GPFS,
//! CephFS) where a Slurm array's tasks run on other hosts:
//! - **Creation is atomic.** The holder's description (JSON: pid, host, boot id, process start
//!   time, command, since, a random token) is written to a file of its own, then hard-linked to
//!   the lock's name: `link(2)` fails with `EEXIST` when the name exists, atomically on every
//!   POSIX file system and on NFS (where a lost reply is caught by checking that the own file
//!   now has two links). On file systems without hard links it falls back to
//!   `open(O_CREAT|O_EXCL)`, atomic on local file systems and NFS v3 and later.
//! - **Liveness on the same host** (same host name and boot id): the holder's pid is alive and
//!   started at the recorded time (so a reused pid is not taken for the holder).
//! - **Liveness on other hosts**: the holder refreshes the lock file's modification time every
//!   [`heartbeat`] seconds while it runs (server time on NFS: `futimens(UTIME_NOW)`). A waiter
//!   takes the lock as stale when the time has not moved for [`stale_after`] seconds of the
//!   waiter's own clock (so clock skew between hosts does not matter), or at once when the file
//!   is already older than that by the waiter's clock. The stale timeout (default 120 s, above
//!   NFS's attribute cache time) is `MIMICIT_LOCK_STALE_S`; the heartbeat is a quarter of it.
//! - **Takeover is atomic.** A stale lock is renamed away to a name of the taker's own
//!   (`rename(2)`: only one of several takers succeeds), checked to be the very lock judged
//!   stale (the same token), removed, and the lock created anew as above.

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The lock's file name in the folder it guards.
pub const FILE_NAME: &str = ".mimicit.lock";

/// Who holds a lock, as its file says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub pid: u32,
    pub host: String,
    /// `/proc/sys/kernel/random/boot_id` of the holder's host (empty when unknown).
    #[serde(default)]
    pub boot_id: String,
    /// The process's start time in clock ticks since boot (`/proc/PID/stat`), 0 when unknown.
    #[serde(default)]
    pub start_ticks: u64,
    pub command: String,
    /// When the lock was taken, UTC, `YYYY-MM-DDTHH:MM:SSZ`.
    pub since: String,
    pub token: String,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "pid {} on host {}, `{}`, since {}",
            self.pid, self.host, self.command, self.since
        )
    }
}

/// What to do when another process holds the lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Wait until it is released (or found stale), saying so on stderr.
    Block,
    /// Stop with [`Error::Busy`].
    NoWait,
}

/// A held lock; released (its file removed) when dropped.
pub struct Lock {
    path: PathBuf,
    token: String,
    /// Whether this guard owns the lock (false: the process already held it, see [`acquire`]).
    owner: bool,
    stop: Arc<(Mutex<bool>, Condvar)>,
    heartbeat: Option<std::thread::JoinHandle<()>>,
}

impl Lock {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// What [`acquire_here`] does when another process holds a lock: set once by the command line
/// (`--no-wait`).
static NO_WAIT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Sets what [`acquire_here`] does when another process holds a lock.
pub fn set_wait(wait: Wait) {
    NO_WAIT.store(wait == Wait::NoWait, Ordering::Relaxed);
}

/// [`acquire`] with this process's command line and the waiting set by [`set_wait`].
pub fn acquire_here(dir: &Path) -> Result<Lock> {
    let wait = if NO_WAIT.load(Ordering::Relaxed) {
        Wait::NoWait
    } else {
        Wait::Block
    };
    acquire(dir, &command_line(), wait)
}

/// The folders this process holds locks on: acquiring one again is a no-op guard.
fn held() -> &'static Mutex<Vec<PathBuf>> {
    static HELD: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
    &HELD
}

/// Seconds without a heartbeat after which a lock of another host is stale.
pub fn stale_after() -> Duration {
    let s = std::env::var("MIMICIT_LOCK_STALE_S")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .unwrap_or(120.0);
    Duration::from_secs_f64(s)
}

/// How often the holder refreshes the lock file's time: a quarter of [`stale_after`].
pub fn heartbeat() -> Duration {
    stale_after() / 4
}

/// Takes the lock of the run folder `dir` (created if missing) for `command`.
pub fn acquire(dir: &Path, command: &str, wait: Wait) -> Result<Lock> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let dir = std::fs::canonicalize(dir).map_err(|e| Error::io(dir, e))?;
    let path = dir.join(FILE_NAME);
    {
        let held = held().lock().expect("lock registry");
        if held.contains(&dir) {
            return Ok(Lock {
                path,
                token: String::new(),
                owner: false,
                stop: Arc::new((Mutex::new(true), Condvar::new())),
                heartbeat: None,
            });
        }
    }
    let me = Holder {
        pid: std::process::id(),
        host: hostname(),
        boot_id: boot_id(),
        start_ticks: start_ticks(std::process::id()).unwrap_or(0),
        command: command.to_string(),
        since: utc_now(),
        token: token(),
    };
    let mut told: Option<String> = None;
    // The holder's file time as last seen, and since when (our clock) it has not moved.
    let mut watch: Option<(String, SystemTime, Instant)> = None;
    loop {
        if try_create(&path, &me)? {
            break;
        }
        let Some((holder, mtime)) = read(&path)? else {
            continue; // released in between
        };
        if is_stale(&holder, mtime, &mut watch) {
            tracing::warn!(
                "{}: taking over the lock of a writer that is gone ({holder})",
                path.display()
            );
            take_over(&path, &holder)?;
            continue;
        }
        match wait {
            Wait::NoWait => {
                return Err(Error::Busy {
                    path: dir.clone(),
                    holder: holder.to_string(),
                })
            }
            Wait::Block => {
                let line = holder.to_string();
                if told.as_ref() != Some(&line) {
                    eprintln!(
                        "mimicit: {} is in use by another writer ({line}); waiting for it to \
                         finish (--no-wait: stop instead)",
                        dir.display()
                    );
                    told = Some(line);
                }
                std::thread::sleep(poll_interval());
            }
        }
    }
    remove_leftovers(&dir);
    held().lock().expect("lock registry").push(dir);
    let stop = Arc::new((Mutex::new(false), Condvar::new()));
    let beat = {
        let (stop, path, token) = (stop.clone(), path.clone(), me.token.clone());
        std::thread::Builder::new()
            .name("lock-heartbeat".into())
            .spawn(move || heartbeat_loop(&path, &token, &stop))
            .ok()
    };
    Ok(Lock {
        path,
        token: me.token,
        owner: true,
        stop,
        heartbeat: beat,
    })
}

/// Who holds the lock of `dir` now, if anyone (stale or not).
pub fn holder(dir: &Path) -> Option<Holder> {
    read(&dir.join(FILE_NAME)).ok().flatten().map(|(h, _)| h)
}

impl Drop for Lock {
    fn drop(&mut self) {
        if !self.owner {
            return;
        }
        {
            let (m, c) = &*self.stop;
            *m.lock().expect("heartbeat flag") = true;
            c.notify_all();
        }
        if let Some(h) = self.heartbeat.take() {
            let _ = h.join();
        }
        if matches!(read(&self.path), Ok(Some((h, _))) if h.token == self.token) {
            let _ = std::fs::remove_file(&self.path);
        }
        if let Some(dir) = self.path.parent() {
            held()
                .lock()
                .expect("lock registry")
                .retain(|d| d.as_path() != dir);
        }
    }
}

fn poll_interval() -> Duration {
    (heartbeat() / 4).clamp(Duration::from_millis(50), Duration::from_secs(2))
}

fn heartbeat_loop(path: &Path, token: &str, stop: &(Mutex<bool>, Condvar)) {
    let (m, c) = stop;
    let mut stopped = m.lock().expect("heartbeat flag");
    loop {
        // The flag may be set before this thread first looks: check before each wait.
        if *stopped {
            return;
        }
        let (s, _) = c
            .wait_timeout(stopped, heartbeat())
            .expect("heartbeat flag");
        stopped = s;
        if *stopped {
            return;
        }
        match read(path) {
            Ok(Some((h, _))) if h.token == token => touch(path),
            _ => {
                tracing::error!(
                    "{}: this process's lock was taken over by another writer (it judged this \
                     one gone: a paused process or a clock far off?); outputs may clash",
                    path.display()
                );
                return;
            }
        }
    }
}

/// Sets the file's modification time to now, the file system's now (server time on NFS).
fn touch(path: &Path) {
    use std::os::fd::AsRawFd;
    if let Ok(f) = std::fs::File::open(path) {
        let now = [
            libc::timespec {
                tv_sec: 0,
                tv_nsec: libc::UTIME_NOW,
            },
            libc::timespec {
                tv_sec: 0,
                tv_nsec: libc::UTIME_NOW,
            },
        ];
        // SAFETY: `futimens` reads the two timespecs and the descriptor `f` keeps open.
        unsafe { libc::futimens(f.as_raw_fd(), now.as_ptr()) };
    }
}

/// Creates the lock file holding `me`; false when it exists.
fn try_create(path: &Path, me: &Holder) -> Result<bool> {
    let dir = path.parent().expect("a folder's lock");
    let mut text = serde_json::to_vec_pretty(me).expect("serialisable");
    text.push(b'\n');
    // A temporary name (`atomic::is_temp_name`): a copy left by a process killed right here is
    // removed by the next lock holder and by a run's clean-up of leftovers.
    let own = dir.join(format!("{FILE_NAME}.tmp-{}-{}", me.pid, &me.token[..8]));
    let write_own = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&own)?;
        f.write_all(&text)?;
        f.sync_all()
    };
    write_own().map_err(|e| Error::io(&own, e))?;
    let linked = std::fs::hard_link(&own, path);
    let result = match linked {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            // NFS: the link may have been made though its reply was lost.
            Ok(links(&own) == Some(2))
        }
        // The holder's clean-up removed the own copy in between: try again.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(_) => {
            // No hard links here: exclusive creation.
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)
            {
                Ok(mut f) => f
                    .write_all(&text)
                    .and_then(|_| f.sync_all())
                    .map(|_| true)
                    .map_err(|e| Error::io(path, e)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
                Err(e) => Err(Error::io(path, e)),
            }
        }
    };
    let _ = std::fs::remove_file(&own);
    result
}

/// Removes the temporary copies (`.mimicit.lock.tmp-*`) that processes killed while taking
/// or taking over the lock left. A live waiter whose copy goes just tries again.
fn remove_leftovers(dir: &Path) {
    let prefix = format!("{FILE_NAME}.tmp-");
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with(&prefix) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

fn links(path: &Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| m.nlink())
}

/// The holder and the file's modification time; None when there is no lock file. A file that
/// does not parse (being written by the exclusive-creation fallback, or damaged) is a holder
/// with pid 0 that only goes stale by time.
fn read(path: &Path) -> Result<Option<(Holder, SystemTime)>> {
    // Opening revalidates the attributes on NFS (close-to-open consistency).
    let f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(path, e)),
    };
    let mtime = f
        .metadata()
        .and_then(|m| m.modified())
        .map_err(|e| Error::io(path, e))?;
    let mut text = String::new();
    let _ = std::io::Read::read_to_string(&mut &f, &mut text);
    let holder = serde_json::from_str::<Holder>(&text).unwrap_or_else(|_| Holder {
        pid: 0,
        host: "?".into(),
        boot_id: String::new(),
        start_ticks: 0,
        command: "(unreadable lock file)".into(),
        since: "?".into(),
        token: blake3::hash(text.as_bytes()).to_hex()[..16].to_string(),
    });
    Ok(Some((holder, mtime)))
}

/// Whether the holder is gone: see the module doc.
fn is_stale(
    holder: &Holder,
    mtime: SystemTime,
    watch: &mut Option<(String, SystemTime, Instant)>,
) -> bool {
    let same_host = holder.pid != 0
        && holder.host == hostname()
        && (holder.boot_id.is_empty() || holder.boot_id == boot_id());
    if same_host {
        return match start_ticks(holder.pid) {
            None => true, // no such process
            Some(t) => holder.start_ticks != 0 && t != holder.start_ticks,
        };
    }
    if holder.host == hostname() && !holder.boot_id.is_empty() && holder.boot_id != boot_id() {
        return true; // this host has rebooted since
    }
    let stale = stale_after();
    if SystemTime::now()
        .duration_since(mtime)
        .is_ok_and(|age| age > stale)
    {
        return true;
    }
    match watch {
        Some((token, seen, since)) if *token == holder.token && *seen == mtime => {
            since.elapsed() > stale
        }
        _ => {
            *watch = Some((holder.token.clone(), mtime, Instant::now()));
            false
        }
    }
}

/// Moves the stale lock of `holder` out of the way; leaves a lock that is not that one.
fn take_over(path: &Path, holder: &Holder) -> Result<()> {
    let dir = path.parent().expect("a folder's lock");
    let aside = dir.join(format!(
        "{FILE_NAME}.tmp-stale-{}-{}",
        std::process::id(),
        &token()[..8]
    ));
    match std::fs::rename(path, &aside) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(path, e)),
    }
    let moved = read(&aside)?.map(|(h, _)| h.token);
    if moved.as_deref() != Some(holder.token.as_str()) {
        // Another taker replaced it in between with a live lock: put that one back.
        let _ = std::fs::hard_link(&aside, path);
    }
    let _ = std::fs::remove_file(&aside);
    Ok(())
}

pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: `gethostname` writes at most `buf.len()` bytes into `buf`.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "localhost".into();
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// The start time of process `pid` (`/proc/PID/stat` field 22), None when there is no such
/// process. Where `/proc` is missing, `kill(pid, 0)` says whether it exists (time 0).
fn start_ticks(pid: u32) -> Option<u64> {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            // The command name (field 2) is in parentheses and may hold spaces.
            let rest = &stat[stat.rfind(')')? + 1..];
            rest.split_whitespace().nth(19)?.parse().ok()
        }
        Err(_) if Path::new("/proc/self/stat").exists() => None,
        Err(_) => {
            // SAFETY: signal 0 only checks that the process exists.
            let rc = unsafe { libc::kill(pid as libc::pid_t, 0) };
            let exists =
                rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
            exists.then_some(0)
        }
    }
}

fn token() -> String {
    let mut h = blake3::Hasher::new();
    h.update(&std::process::id().to_le_bytes());
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    h.update(&now.as_nanos().to_le_bytes());
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    h.update(&N.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    h.update(hostname().as_bytes());
    h.finalize().to_hex()[..32].to_string()
}

/// The command line of this process, for the lock's description.
pub fn command_line() -> String {
    let args: Vec<OsString> = std::env::args_os().collect();
    let mut words: Vec<String> = args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    if let Some(first) = words.first_mut() {
        if let Some(name) = Path::new(first.as_str()).file_name() {
            *first = name.to_string_lossy().into_owned();
        }
    }
    words.join(" ")
}

/// Now, UTC, `YYYY-MM-DDTHH:MM:SSZ`.
fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_holder(dir: &Path, h: &Holder) {
        std::fs::write(dir.join(FILE_NAME), serde_json::to_vec(h).unwrap()).unwrap();
    }

    fn other(pid: u32, host: &str) -> Holder {
        Holder {
            pid,
            host: host.into(),
            boot_id: String::new(),
            start_ticks: 0,
            command: "mimicit run x.toml --out out".into(),
            since: "2024-01-01T00:00:00Z".into(),
            token: "t0".into(),
        }
    }

    #[test]
    fn taken_released_and_reentrant() {
        let dir = tempfile::tempdir().unwrap();
        let lock = acquire(dir.path(), "test", Wait::NoWait).unwrap();
        let h = holder(dir.path()).unwrap();
        assert_eq!(h.pid, std::process::id());
        assert_eq!(h.command, "test");
        assert!(h.since.ends_with('Z') && h.since.len() == 20, "{}", h.since);
        {
            // The same process again: a no-op guard that leaves the lock in place.
            let again = acquire(dir.path(), "again", Wait::NoWait).unwrap();
            drop(again);
            assert!(holder(dir.path()).is_some());
        }
        drop(lock);
        assert!(holder(dir.path()).is_none());
        // Nothing else is left in the folder.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_live_holder_on_this_host_is_busy_with_no_wait() {
        let dir = tempfile::tempdir().unwrap();
        // pid 1 lives as long as the machine; its start time is whatever it is.
        let mut h = other(1, &hostname());
        h.boot_id = boot_id();
        h.start_ticks = start_ticks(1).unwrap_or(0);
        write_holder(dir.path(), &h);
        let err = acquire(dir.path(), "test", Wait::NoWait)
            .err()
            .expect("busy");
        let text = err.to_string();
        assert!(text.contains("pid 1 on host"), "{text}");
        assert!(text.contains("mimicit run x.toml"), "{text}");
        assert!(text.contains("2024-01-01T00:00:00Z"), "{text}");
        assert!(matches!(err, Error::Busy { .. }));
    }

    #[test]
    fn a_dead_holder_on_this_host_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        // A process that has exited: its pid is free (or reused, with another start time).
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        let mut h = other(pid, &hostname());
        h.boot_id = boot_id();
        h.start_ticks = 1;
        write_holder(dir.path(), &h);
        let lock = acquire(dir.path(), "test", Wait::NoWait).unwrap();
        assert_eq!(holder(dir.path()).unwrap().pid, std::process::id());
        drop(lock);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn another_hosts_lock_goes_stale_by_its_heartbeat() {
        let dir = tempfile::tempdir().unwrap();
        write_holder(dir.path(), &other(4242, "elsewhere.example"));
        // Fresh: busy.
        assert!(acquire(dir.path(), "test", Wait::NoWait).is_err());
        // Its time left far behind: stale at once.
        let old = SystemTime::now() - Duration::from_secs(3600);
        std::fs::File::options()
            .write(true)
            .open(dir.path().join(FILE_NAME))
            .unwrap()
            .set_modified(old)
            .unwrap();
        let lock = acquire(dir.path(), "test", Wait::NoWait).unwrap();
        assert_eq!(holder(dir.path()).unwrap().pid, std::process::id());
        drop(lock);
    }

    #[test]
    fn an_unmoving_heartbeat_is_stale_after_the_timeout_of_the_watchers_clock() {
        let h = other(4242, "elsewhere.example");
        let now = SystemTime::now();
        let mut watch = None;
        assert!(!is_stale(&h, now, &mut watch));
        // Pretend the watcher first saw this time long ago.
        if let Some((_, _, since)) = watch.as_mut() {
            *since = Instant::now() - stale_after() - Duration::from_secs(1);
        }
        assert!(is_stale(&h, now, &mut watch));
        // A heartbeat (a new time) starts the watch again.
        let later = now + Duration::from_secs(1);
        assert!(!is_stale(&h, later, &mut watch));
    }

    #[test]
    fn takeover_leaves_a_lock_that_is_not_the_stale_one() {
        let dir = tempfile::tempdir().unwrap();
        let mut fresh = other(7, "elsewhere.example");
        fresh.token = "fresh".into();
        write_holder(dir.path(), &fresh);
        // Judged stale under another token: the live lock must stay.
        take_over(&dir.path().join(FILE_NAME), &other(7, "elsewhere.example")).unwrap();
        assert_eq!(holder(dir.path()).unwrap().token, "fresh");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn copies_left_by_killed_takers_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(".mimicit.lock.tmp-99-deadbeef"), "{}").unwrap();
        std::fs::write(dir.path().join(".mimicit.lock.tmp-stale-98-cafe"), "{}").unwrap();
        assert!(crate::atomic::is_temp_name(".mimicit.lock.tmp-99-deadbeef"));
        let lock = acquire(dir.path(), "test", Wait::NoWait).unwrap();
        drop(lock);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn utc_dates() {
        let s = utc_now();
        assert_eq!(&s[4..5], "-");
        assert!(s.starts_with("20"), "{s}");
    }
}
