//! Real faults, end to end: writers racing for one output folder, a disk that fills up, an input
//! that never delivers data, frames nothing references, rejects that must not depend on where a
//! corpus lives. Every wait here is bounded in count and time.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use crate::util::*;

fn run_cmd(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(binary());
    cmd.args(args)
        .arg("--progress=none")
        .current_dir(dir)
        .env_remove("MIMICIT_LOG")
        .env_remove(mimicit::faults::ENV);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

const DEMO_RUN: &[&str] = &["run", "scenarios/demo.toml", "--out", "out"];

/// A child process killed (and reaped) when the guard goes, whatever the test's outcome.
struct Reaped(Option<Child>);

impl Reaped {
    fn spawn(mut cmd: Command) -> Reaped {
        Reaped(Some(
            cmd.stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn mimicit"),
        ))
    }

    /// Waits for the child, at most `limit`; a child still running then is killed and the test
    /// fails.
    fn finish(mut self, limit: Duration) -> Output {
        let mut child = self.0.take().expect("a child");
        let step = Duration::from_millis(50);
        for _ in 0..(limit.as_millis() / step.as_millis()).max(1) {
            if child.try_wait().expect("try_wait").is_some() {
                return child.wait_with_output().expect("output");
            }
            std::thread::sleep(step);
        }
        let _ = child.kill();
        let o = child.wait_with_output().expect("output");
        panic!(
            "mimicit did not finish in {limit:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Polls `cond` every 20 ms, at most `tries` times.
fn eventually(tries: u32, mut cond: impl FnMut() -> bool) -> bool {
    for _ in 0..tries {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    cond()
}

/// The files of an uninterrupted demo run.
fn reference() -> Vec<(PathBuf, Vec<u8>)> {
    let dir = tempfile::tempdir().unwrap();
    snapshot(&run_demo(dir.path()))
}

#[test]
fn a_second_writer_waits_for_the_holder_or_stops_with_no_wait() {
    let reference = reference();
    let dir = tempfile::tempdir().unwrap();
    copy_demo(dir.path());
    let out = dir.path().join("out");
    // This test process takes OUT's lock as a run would (the same code, a real lock file).
    let held = mimicit::lock::acquire(&out, "the test holding OUT", mimicit::lock::Wait::NoWait)
        .expect("lock OUT");

    // --no-wait: status 1 and a message naming the holder.
    let o = run_cmd(
        dir.path(),
        &["--no-wait", "run", "scenarios/demo.toml", "--out", "out"],
        &[],
    )
    .output()
    .unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("pid {}", std::process::id()))
            && err.contains("the test holding OUT")
            && err.contains("since ")
            && err.contains(&mimicit::lock::hostname()),
        "{err}"
    );
    assert_eq!(
        err.matches("in use by another writer").count(),
        1,
        "said once: {err}"
    );
    assert!(!out.join("manifest.json").exists(), "it wrote something");

    // Two runs started while the folder is held: both wait, then one works and the other finds
    // everything up to date.
    let a = Reaped::spawn(run_cmd(dir.path(), DEMO_RUN, &[]));
    let b = Reaped::spawn(run_cmd(dir.path(), DEMO_RUN, &[]));
    // Readers never wait for the writer.
    let o = mimicit(dir.path(), &["verify", "out"]);
    assert!(stderr(&o).contains("no manifest"), "{}", stderr(&o));
    // Nothing may happen while the lock is held (bounded look: 25 polls).
    assert!(!eventually(25, || out.join("manifest.json").exists()));
    drop(held);
    let (a, b) = (
        a.finish(Duration::from_secs(300)),
        b.finish(Duration::from_secs(300)),
    );
    for o in [&a, &b] {
        assert_eq!(o.status.code(), Some(0), "{}", stderr(o));
        assert!(
            stderr(o).contains("waiting for it to finish"),
            "{}",
            stderr(o)
        );
    }
    let ran = |o: &Output| stderr(o).lines().filter(|l| l.ends_with(" ran")).count();
    let fresh = |o: &Output| {
        stderr(o)
            .lines()
            .filter(|l| l.ends_with("up-to-date"))
            .count()
    };
    assert!(
        (ran(&a) == 6 && fresh(&b) == 6) || (ran(&b) == 6 && fresh(&a) == 6),
        "one must run every stage, the other find them up to date:\n{}\n---\n{}",
        stderr(&a),
        stderr(&b)
    );
    assert!(!out.join(mimicit::lock::FILE_NAME).exists());
    assert_same_files(&reference, &snapshot(&out));
    let o = mimicit(dir.path(), &["verify", "out"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

#[test]
fn a_lock_left_by_a_killed_run_is_taken_over() {
    let reference = reference();
    let dir = tempfile::tempdir().unwrap();
    copy_demo(dir.path());
    let out = dir.path().join("out");
    // Aborted (no destructor runs): the lock file stays, naming a process that is gone.
    let o = run_cmd(
        dir.path(),
        DEMO_RUN,
        &[(mimicit::faults::ENV, "keyframes:3")],
    )
    .output()
    .unwrap();
    assert!(
        stderr(&o).contains("aborting after write"),
        "{}",
        stderr(&o)
    );
    let holder = mimicit::lock::holder(&out).expect("the killed run's lock is left");
    assert_ne!(holder.pid, std::process::id());
    // Not waited for, even with --no-wait: the holder is gone.
    let o = run_cmd(
        dir.path(),
        &["--no-wait", "run", "scenarios/demo.toml", "--out", "out"],
        &[],
    )
    .output()
    .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("taking over the lock"),
        "{}",
        stderr(&o)
    );
    assert!(mimicit::lock::holder(&out).is_none());
    assert_same_files(&reference, &snapshot(&out));
}

#[test]
fn a_lock_of_another_host_is_taken_over_once_its_heartbeat_stops() {
    let dir = tempfile::tempdir().unwrap();
    copy_demo(dir.path());
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    // A worker on another machine of a shared file system that died: its lock file is fresh
    // but nothing refreshes its time any more.
    let other = serde_json::json!({
        "pid": 12345, "host": "node-elsewhere", "command": "mimicit run dc.toml --out /shared/out",
        "since": "2024-01-01T00:00:00Z", "token": "0123456789abcdef"
    });
    std::fs::write(out.join(mimicit::lock::FILE_NAME), other.to_string()).unwrap();
    let o = run_cmd(
        dir.path(),
        &[
            "--no-wait",
            "run",
            "scenarios/demo.toml",
            "--out",
            "out",
            "--stages",
            "scan",
        ],
        &[("MIMICIT_LOCK_STALE_S", "2")],
    )
    .output()
    .unwrap();
    assert_eq!(o.status.code(), Some(1), "fresh: busy: {}", stderr(&o));
    assert!(stderr(&o).contains("node-elsewhere"), "{}", stderr(&o));
    // Waiting: while this test refreshes the lock's time (the other host's heartbeat) the run
    // waits; once the refreshing stops, it takes the lock over after 2 s of its own clock.
    let lock_file = out.join(mimicit::lock::FILE_NAME);
    let mut child = run_cmd(
        dir.path(),
        &[
            "run",
            "scenarios/demo.toml",
            "--out",
            "out",
            "--stages",
            "scan",
        ],
        &[("MIMICIT_LOCK_STALE_S", "2")],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let pipe = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(pipe).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let child = Reaped(Some(child));
    let mut lines = Vec::new();
    let mut waited = false;
    for _ in 0..1500 {
        std::fs::File::options()
            .write(true)
            .open(&lock_file)
            .unwrap()
            .set_modified(std::time::SystemTime::now())
            .unwrap();
        lines.extend(rx.try_iter());
        if lines.iter().any(|l| l.contains("waiting for it to finish")) {
            waited = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(waited, "{}", lines.join("\n"));
    let status = child.finish(Duration::from_secs(120)).status;
    reader.join().unwrap();
    lines.extend(rx.try_iter());
    let err = lines.join("\n");
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(err.contains("taking over the lock"), "{err}");
    assert!(mimicit::lock::holder(&out).is_none());
}

#[test]
fn gc_removes_frames_of_earlier_settings_and_verify_warns_about_them() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_demo(dir.path());
    let o = mimicit(
        dir.path(),
        &[
            "run",
            "scenarios/demo.toml",
            "--out",
            "out",
            "--set",
            "image.width=112",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));

    let o = mimicit(dir.path(), &["verify", "out"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "a warning is not a failure: {}",
        stderr(&o)
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_valid("verify.schema.json", &v, "verify stdout");
    let stale = v["unreferenced_frames"].as_u64().unwrap();
    assert!(stale > 0, "{v}");
    assert!(stderr(&o).contains("warning: DC/frames"), "{}", stderr(&o));

    let before = files(&out);
    let o = mimicit(dir.path(), &["gc", "out", "--dry-run"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let dry: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_valid("gc.schema.json", &dry, "gc --dry-run stdout");
    assert_eq!(dry["removed"].as_u64(), Some(stale));
    assert_eq!(dry["bytes"], v["unreferenced_bytes"]);
    assert_eq!(files(&out), before, "--dry-run removed something");

    let o = mimicit(dir.path(), &["gc", "out"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let done: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_valid("gc.schema.json", &done, "gc stdout");
    assert_eq!(done["removed"], dry["removed"]);
    assert!(
        stderr(&o).contains(&format!("removed {stale} unreferenced frames")),
        "{}",
        stderr(&o)
    );
    assert_eq!(files(&out).len(), before.len() - stale as usize);

    let o = mimicit(dir.path(), &["verify", "out"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(v["unreferenced_frames"], 0);
    // What is left is what a run with the new settings alone writes.
    let fresh = tempfile::tempdir().unwrap();
    copy_demo(fresh.path());
    let o = mimicit(
        fresh.path(),
        &[
            "run",
            "scenarios/demo.toml",
            "--out",
            "out",
            "--set",
            "image.width=112",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_same_files(&snapshot(&fresh.path().join("out")), &snapshot(&out));
}

#[test]
fn merge_links_only_the_frames_the_partitions_reference() {
    let dir = tempfile::tempdir().unwrap();
    copy_demo(dir.path());
    for set in ["image.width=224", "image.width=112"] {
        for i in 0..2 {
            let part = format!("{i}/2");
            let o = mimicit(
                dir.path(),
                &[
                    "run",
                    "scenarios/demo.toml",
                    "--out",
                    "out",
                    "--partition",
                    &part,
                    "--set",
                    set,
                ],
            );
            assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        }
    }
    let o = mimicit(
        dir.path(),
        &[
            "merge",
            "scenarios/demo.toml",
            "--out",
            "out",
            "--set",
            "image.width=112",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = mimicit(dir.path(), &["verify", "out"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["unreferenced_frames"], 0, "{v}");
    // The partitions still hold the 224-wide frames; gc collects them there too.
    let o = mimicit(dir.path(), &["gc", "out"]);
    let g: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(g["removed"].as_u64().unwrap() > 0, "{g}");
    assert!(
        g["stores"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["path"].as_str().unwrap().starts_with("partitions/")),
        "{g}"
    );
}

/// The demo with one video replaced by bytes that are not a video.
fn demo_with_a_broken_video(dir: &Path) {
    copy_demo(dir);
    std::fs::write(
        dir.join("demo/videos/v_demo_street.mp4"),
        b"not a video at all",
    )
    .unwrap();
}

#[test]
fn rejects_do_not_depend_on_where_the_corpus_is() {
    let mut tables = Vec::new();
    for name in ["first", "second/deeper"] {
        let dir = tempfile::tempdir().unwrap();
        let at = dir.path().join(name);
        std::fs::create_dir_all(&at).unwrap();
        demo_with_a_broken_video(&at);
        let o = mimicit(&at, DEMO_RUN);
        assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
        let err = stderr(&o);
        let root = std::fs::canonicalize(&at).unwrap();
        // The log lines of rejects (stage: item (path): error).
        for line in err.lines().filter(|l| l.contains("v_demo_street (")) {
            assert!(
                !line.contains(&*root.to_string_lossy()),
                "an absolute path in the log: {line}"
            );
        }
        let path = at.join("out/DC/rejects/keyframes.parquet");
        let rejects = mimicit::tables::read_rejects(&path).unwrap();
        assert_eq!(rejects.len(), 1, "{rejects:?}");
        assert_eq!(rejects[0].path, "videos/v_demo_street.mp4");
        assert!(
            !rejects[0].error.contains(&*root.to_string_lossy()),
            "{rejects:?}"
        );
        let pack = mimicit::tables::read_rejects(&at.join("out/DC/rejects/pack.parquet")).unwrap();
        assert!(pack.iter().all(|r| !r.path.starts_with('/')), "{pack:?}");
        tables.push(
            ["keyframes", "pack"]
                .map(|s| std::fs::read(at.join(format!("out/DC/rejects/{s}.parquet"))).unwrap()),
        );
    }
    assert!(
        tables[0] == tables[1],
        "the rejects tables differ by where the corpus is"
    );
}

#[test]
fn an_error_names_its_cause_once() {
    let dir = tempfile::tempdir().unwrap();
    copy_demo(dir.path());
    std::fs::write(dir.path().join("file"), b"").unwrap();
    let o = mimicit(
        dir.path(),
        &["run", "scenarios/demo.toml", "--out", "file/out"],
    );
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert_eq!(err.matches("Not a directory").count(), 1, "{err}");
    assert!(!err.contains("caused by"), "{err}");
}

/// A tmpfs of `size` mounted on `dir` while it lives; unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// None (the test skipped through [`skip`]) when this process may not mount.
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).unwrap();
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            skip("a full disk needs a tmpfs, which needs root to mount");
            return None;
        }
        let o = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output();
        match o {
            Ok(o) if o.status.success() => Some(Tmpfs(dir.to_path_buf())),
            Ok(o) => {
                skip(&format!(
                    "mount -t tmpfs failed: {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                ));
                None
            }
            Err(e) => {
                skip(&format!("no mount command: {e}"));
                None
            }
        }
    }

    /// Makes it larger, keeping what it holds: space freed.
    fn grow(&self, size: &str) {
        let o = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.0)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
}

/// The demo run into a tmpfs of `size`: it must stop in `stage` with a full disk, leave nothing
/// half written, and, once the tmpfs is larger, end as an uninterrupted run.
fn full_disk_during(stage: &str, size: &str) {
    let reference = reference();
    let dir = tempfile::tempdir().unwrap();
    copy_demo(dir.path());
    let out = dir.path().join("out");
    let Some(fs) = Tmpfs::mount(&out, size) else {
        return;
    };
    let o = run_cmd(dir.path(), DEMO_RUN, &[]).output().unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("No space left on device"), "{err}");
    assert_eq!(err.matches("No space left on device").count(), 1, "{err}");
    // Stopped in `stage`: the manifest has the stages before it, not it.
    let manifest = read_json(&out.join("manifest.json"));
    let done = &manifest["scenarios"]["DC"]["stages"];
    assert!(done.get(stage).is_none(), "{stage} is recorded: {manifest}");
    let before = mimicit::stages::StageId::ALL
        .iter()
        .take_while(|s| s.name() != stage)
        // The syphus stage is off in the demo (no endpoint): never recorded.
        .filter(|s| **s != mimicit::stages::StageId::Syphus)
        .count();
    assert_eq!(done.as_object().unwrap().len(), before, "{manifest}");
    // Nothing half written: no temporary file, and what the manifest lists verifies.
    let partial: Vec<_> = files(&out)
        .into_iter()
        .filter(|f| f.to_string_lossy().contains(".tmp-"))
        .collect();
    assert!(partial.is_empty(), "left behind: {partial:?}");
    let o = mimicit(dir.path(), &["verify", "out"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));

    fs.grow("64m");
    let o = run_cmd(dir.path(), DEMO_RUN, &[]).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_same_files(&reference, &snapshot(&out));
    drop(fs);
}

#[test]
fn a_disk_that_fills_up_during_keyframes() {
    full_disk_during("keyframes", "600k");
}

#[test]
fn a_disk_that_fills_up_during_pack() {
    full_disk_during("pack", "1800k");
}

#[test]
fn an_input_that_never_delivers_data_does_not_hold_up_the_run() {
    let dir = tempfile::tempdir().unwrap();
    copy_demo(dir.path());
    let video = dir.path().join("demo/videos/v_demo_street.mp4");
    std::fs::remove_file(&video).unwrap();
    let c = std::ffi::CString::new(video.to_string_lossy().as_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    // Nobody ever writes to the FIFO: a reader that opened it would wait for ever.
    let o = Reaped::spawn(run_cmd(
        dir.path(),
        &[
            "--item-timeout",
            "5",
            "run",
            "scenarios/demo.toml",
            "--out",
            "out",
        ],
        &[],
    ))
    .finish(Duration::from_secs(300));
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(3), "{err}");
    let mut rejects = Vec::new();
    for stage in ["scan", "keyframes"] {
        rejects.extend(
            mimicit::tables::read_rejects(
                &dir.path().join(format!("out/DC/rejects/{stage}.parquet")),
            )
            .unwrap(),
        );
    }
    assert_eq!(rejects.len(), 1, "{rejects:?}");
    assert_eq!(rejects[0].item, "v_demo_street", "{rejects:?}");
    // Ended by the time limit in keyframes (the pipe is listed like any video at scan).
    assert_eq!(rejects[0].stage, "keyframes", "{rejects:?}");
    assert!(rejects[0].error.contains("5 s time limit"), "{rejects:?}");
    assert!(err.contains("v_demo_street.mp4"), "{err}");
    // The other three units have their frames.
    let frames = mimicit::tables::read_frames(&dir.path().join("out/DC/frames.parquet")).unwrap();
    let units: std::collections::BTreeSet<_> = frames.iter().map(|f| f.unit_id.as_str()).collect();
    assert_eq!(units.len(), 3, "{units:?}");
}
