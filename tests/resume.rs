//! Exactly-once resumption: a demo run stopped at any moment (an abort right after the n-th file
//! a stage wrote, through `MIMICIT_FAIL_AFTER=<stage>:<n>`, and real SIGKILLs after a delay),
//! then run again, must end with the same files, byte for byte, as an uninterrupted run; only
//! `timings.json` (wall times) may differ. Leftover temporary files of interrupted writes are
//! planted before each resume and must be gone after it.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::util::*;

/// What a write killed between its temporary file and its rename leaves: a half file under a
/// temporary name, next to real outputs.
fn plant_leftovers(out: &Path) {
    let dirs = [out.to_path_buf(), out.join("DC"), out.join("DC/syphus")];
    let store = std::fs::read_dir(out.join("DC/frames"))
        .map(|d| d.map(|e| e.unwrap().path()).collect::<Vec<_>>())
        .unwrap_or_default();
    for d in dirs.iter().chain(&store).filter(|d| d.is_dir()) {
        std::fs::write(d.join(".half.png.tmp-4242-7"), b"half a file").unwrap();
    }
}

fn run_with(dir: &Path, env: &[(&str, &str)]) -> std::process::Output {
    run_with_args(dir, env, &[])
}

fn run_with_args(dir: &Path, env: &[(&str, &str)], args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new(binary());
    cmd.args([
        "run",
        "scenarios/demo.toml",
        "--out",
        "out",
        "--progress=none",
    ])
    .args(args)
    .current_dir(dir)
    .env_remove("MIMICIT_LOG")
    .env_remove(mimicit::faults::ENV);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// Resumes the run in `dir` and checks it ends as the uninterrupted `reference`.
fn resume_and_compare(dir: &Path, reference: &[(PathBuf, Vec<u8>)], what: &str) {
    let out = dir.join("out");
    plant_leftovers(&out);
    let o = run_with(dir, &[]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "resume after {what}: {}",
        stderr(&o)
    );
    let got = snapshot(&out);
    assert!(
        got.iter()
            .all(|(f, _)| !f.to_string_lossy().contains(".tmp-")),
        "after {what}: temporary files left"
    );
    assert_same_files(reference, &got);
    let o = mimicit(dir, &["verify", "out"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "verify after {what}: {}",
        stderr(&o)
    );
}

/// Runs the demo with the abort armed at `point` and checks that it did abort there.
fn crash_at(dir: &Path, point: &str) {
    let o = run_with(dir, &[(mimicit::faults::ENV, point)]);
    assert_eq!(
        o.status.signal(),
        Some(6),
        "{point}: expected an abort, got {:?}: {}",
        o.status,
        stderr(&o)
    );
    assert!(
        stderr(&o).contains("aborting after write"),
        "{point}: {}",
        stderr(&o)
    );
}

fn reference() -> Vec<(PathBuf, Vec<u8>)> {
    let dir = tempfile::tempdir().unwrap();
    snapshot(&run_demo(dir.path()))
}

#[test]
fn aborted_at_every_kind_of_point_the_next_run_ends_identical() {
    let reference = reference();
    // Write counts per stage, the manifest saves included: scan 4, keyframes ~27 (frames and
    // per-unit journal entries), dedup 4, metadata 5, pack 12 (the images part, the
    // instructions, two shards, each with its journal entry, the index).
    for point in [
        "scan:1",
        "scan:2",
        "scan:4",
        "keyframes:1",
        "keyframes:3",
        "keyframes:12",
        "keyframes:24",
        "dedup:2",
        "metadata:3",
        "pack:2",
        "pack:5",
        "pack:8",
        "pack:11",
    ] {
        let dir = tempfile::tempdir().unwrap();
        copy_demo(dir.path());
        crash_at(dir.path(), point);
        resume_and_compare(dir.path(), &reference, point);
    }
}

#[test]
fn crashed_twice_then_resumed_ends_identical() {
    let reference = reference();
    let dir = tempfile::tempdir().unwrap();
    copy_demo(dir.path());
    crash_at(dir.path(), "keyframes:9");
    plant_leftovers(&dir.path().join("out"));
    crash_at(dir.path(), "pack:3");
    resume_and_compare(dir.path(), &reference, "two crashes");
}

#[test]
fn killed_after_a_delay_the_next_run_ends_identical() {
    let reference = reference();
    // Measure one run, then kill runs at fractions of it: early, in the middle, late.
    let probe = tempfile::tempdir().unwrap();
    copy_demo(probe.path());
    let started = Instant::now();
    let o = run_with(probe.path(), &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let full = started.elapsed();
    let mut killed = 0;
    for fraction in [0.1, 0.3, 0.5, 0.7, 0.9] {
        let dir = tempfile::tempdir().unwrap();
        copy_demo(dir.path());
        let mut child = Command::new(binary())
            .args([
                "run",
                "scenarios/demo.toml",
                "--out",
                "out",
                "--progress=none",
            ])
            .current_dir(dir.path())
            .env_remove(mimicit::faults::ENV)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(full.mul_f64(fraction));
        // SIGKILL: no handler, no cleanup, as an OOM kill or a pulled plug.
        let _ = child.kill();
        let status = child.wait().unwrap();
        if status.signal() == Some(9) {
            killed += 1;
        }
        resume_and_compare(
            dir.path(),
            &reference,
            &format!("SIGKILL at {fraction} of a run"),
        );
    }
    // A kill that came after the run had finished proves nothing: most must have hit a run.
    assert!(killed >= 2, "only {killed} kills landed during a run");
}

#[test]
fn parts_packed_before_a_crash_are_kept_not_rewritten() {
    use std::os::unix::fs::MetadataExt;
    // Small parts: the demo's images fill several.
    let small = ["--set", "pack.max_part_bytes=200000"];
    let clean = tempfile::tempdir().unwrap();
    copy_demo(clean.path());
    let o = run_with_args(clean.path(), &[], &small);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let reference = snapshot(&clean.path().join("out"));
    let parts: Vec<PathBuf> = reference
        .iter()
        .map(|(f, _)| f.clone())
        .filter(|f| {
            f.to_string_lossy().contains("-of-") && f.extension().is_some_and(|e| e == "parquet")
        })
        .collect();
    assert!(parts.len() >= 3, "{parts:?}");

    let dir = tempfile::tempdir().unwrap();
    copy_demo(dir.path());
    // Pack writes: the manifest, then per part its parquet, instructions, train and journal
    // entry: the 9th write finishes the second part.
    let o = run_with_args(dir.path(), &[(mimicit::faults::ENV, "pack:9")], &small);
    assert_eq!(o.status.signal(), Some(6), "{}", stderr(&o));
    let out = dir.path().join("out");
    let inode = |f: &Path| std::fs::metadata(out.join(f)).unwrap().ino();
    let before: Vec<u64> = parts[..2].iter().map(|f| inode(f)).collect();
    assert!(
        !out.join(&parts[2]).exists(),
        "the third part was not written yet"
    );
    let o = run_with_args(dir.path(), &[], &small);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let after: Vec<u64> = parts[..2].iter().map(|f| inode(f)).collect();
    assert_eq!(before, after, "finished parts were written again");
    assert_same_files(&reference, &snapshot(&out));
    assert!(
        !out.join("DC/journal").exists(),
        "the journal outlived the stage"
    );
}
