//! Split runs: `--partition i/N`, `mimicit merge`, and the Slurm job-array scripts on a
//! one-node local cluster. The claim under test: a split run, merged, writes the same bytes as
//! a single run over the same inputs.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::util::*;

/// Files a split run holds besides a single run's: the partitions' own run folders (and the
/// Slurm logs kept beside them).
fn is_partition_file(f: &Path) -> bool {
    f.starts_with("partitions")
}

/// Files that differ between any two runs: the timings and the report page that shows them.
fn is_timing_file(f: &Path) -> bool {
    f.ends_with("timings.json") || f.ends_with("report/index.html")
}

/// Asserts that `merged` holds exactly the files of `single`, byte for byte (but timings).
fn assert_same_outputs(single: &Path, merged: &Path) {
    let a: Vec<PathBuf> = files(single);
    let b: Vec<PathBuf> = files(merged)
        .into_iter()
        .filter(|f| !is_partition_file(f))
        .collect();
    assert_eq!(a, b, "the merged run has other files than the single run");
    assert!(a.len() > 30, "too few files to compare: {a:?}");
    let mut differ = Vec::new();
    for f in &a {
        if is_timing_file(f) {
            continue;
        }
        if std::fs::read(single.join(f)).unwrap() != std::fs::read(merged.join(f)).unwrap() {
            differ.push(f.display().to_string());
        }
    }
    assert!(differ.is_empty(), "differ from the single run: {differ:?}");
}

fn ok(o: &std::process::Output) {
    assert_eq!(o.status.code(), Some(0), "{}", stderr(o));
}

/// Runs the demo whole into `single` and split into `n` partitions merged into `split`, with
/// the same extra arguments.
fn single_and_split(dir: &Path, n: u32, extra: &[&str]) -> (PathBuf, PathBuf) {
    let run = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend_from_slice(extra);
        mimicit(dir, &all)
    };
    ok(&run(&["run", "scenarios/demo.toml", "--out", "single"]));
    for i in 0..n {
        let p = format!("{i}/{n}");
        let o = run(&[
            "run",
            "scenarios/demo.toml",
            "--out",
            "split",
            "--partition",
            &p,
        ]);
        ok(&o);
        assert!(
            stderr(&o).contains("off (the pack stage works on the whole corpus"),
            "{}",
            stderr(&o)
        );
    }
    let o = run(&["merge", "scenarios/demo.toml", "--out", "split"]);
    ok(&o);
    assert!(
        stderr(&o).contains(&format!("merge: {n} partitions")),
        "{}",
        stderr(&o)
    );
    (dir.join("single"), dir.join("split"))
}

#[test]
fn split_run_merged_equals_a_single_run() {
    let dir = tempfile::tempdir().unwrap();
    copy_demo(dir.path());
    let (single, split) = single_and_split(dir.path(), 3, &[]);

    // Every unit is in exactly one partition, and each partition scanned only its own.
    let mut units = Vec::new();
    for i in 0..3 {
        let p = split.join(format!("partitions/{i}-of-3"));
        assert!(p.join("manifest.json").is_file());
        assert!(!p.join("DC/DC.parquet").exists(), "a partition packed");
        assert!(!p.join("report").exists(), "a partition wrote a report");
        let ids = mimicit::tables::read_units(&p.join("DC/units.parquet"))
            .unwrap()
            .into_iter()
            .map(|u| u.id);
        for id in ids {
            assert_eq!(mimicit::partition::Partition::of(&id, 3), i, "{id}");
            units.push(id);
        }
    }
    units.sort();
    assert_eq!(
        units,
        [
            "v_demo_garden",
            "v_demo_kitchen",
            "v_demo_street",
            "v_demo_studio"
        ]
    );

    // A partition is a run folder like any other: its files match the same schemas, and verify
    // checks it.
    for i in 0..3 {
        let p = split.join(format!("partitions/{i}-of-3"));
        assert_valid(
            "manifest.schema.json",
            &read_json(&p.join("manifest.json")),
            "partition manifest",
        );
        assert_valid(
            "timings.schema.json",
            &read_json(&p.join("DC/timings.json")),
            "partition timings",
        );
        for (file, schema_name) in [
            ("DC/units.parquet", "units.schema.json"),
            ("DC/frames.parquet", "frames.schema.json"),
            ("DC/dedup.parquet", "dedup.schema.json"),
            ("DC/features/part-00000.parquet", "features.schema.json"),
            ("DC/rejects/features.parquet", "rejects.schema.json"),
        ] {
            for row in pandas_rows(&p.join(file)).unwrap_or_default() {
                assert_valid(schema_name, &row, file);
            }
        }
        let o = mimicit(dir.path(), &["verify", p.to_str().unwrap()]);
        ok(&o);
    }
    crate::check_outputs_against_schemas(&split);

    assert_same_outputs(&single, &split);
    let o = mimicit(dir.path(), &["verify", "split"]);
    ok(&o);
    assert!(stderr(&o).contains("all match"), "{}", stderr(&o));

    // The merged manifest is the single run's: a run over the merged folder has nothing to do.
    let o = mimicit(
        dir.path(),
        &["run", "scenarios/demo.toml", "--out", "split"],
    );
    ok(&o);
    assert!(!stderr(&o).contains(" ran"), "{}", stderr(&o));
    assert_eq!(
        stderr(&o).matches("up-to-date").count(),
        6,
        "{}",
        stderr(&o)
    );

    // Merging again joins the partitions anew and gives the same bytes.
    ok(&mimicit(
        dir.path(),
        &["merge", "scenarios/demo.toml", "--out", "split"],
    ));
    assert_same_outputs(&single, &split);
}

#[test]
fn split_run_with_whole_corpus_steps_equals_a_single_run() {
    // Corpus-scope near dedup (phase 2, over every partition's frames), features embedded in
    // small batches and cut into small shards with .npy copies, pairs, knn in-context examples
    // and parquet parts; five partitions for four units, so one of them is empty.
    let dir = tempfile::tempdir().unwrap();
    copy_demo(dir.path());
    let sets = [
        "dedup.scope=corpus",
        "dedup.near=true",
        "features.batch=3",
        "features.shard_rows=4",
        "features.npy=true",
        "pack.rel_ins=knn:2",
        "pack.max_part_bytes=150000",
    ];
    let mut extra = Vec::new();
    for s in &sets {
        extra.extend(["--set", s]);
    }
    let (single, split) = single_and_split(dir.path(), 5, &extra);
    assert!(
        split
            .join("partitions/0-of-5/DC/features/part-00000.npy")
            .is_file(),
        "partitions write their vectors"
    );
    for i in 0..5 {
        let p = split.join(format!("partitions/{i}-of-5/DC"));
        assert!(
            !p.join("dedup.parquet").exists(),
            "corpus dedup ran in a partition"
        );
        assert!(
            !p.join("pairs.parquet").exists(),
            "pairs ran in a partition"
        );
    }
    let sizes: Vec<u64> = (0..5)
        .map(|i| {
            mimicit::tables::count_rows(
                &split.join(format!("partitions/{i}-of-5/DC/units.parquet")),
            )
            .unwrap()
        })
        .collect();
    assert!(sizes.contains(&0), "no empty partition: {sizes:?}");
    // The settings did take effect: several feature shards, several parquet parts, and
    // frames dropped for frames of other units (which no partition alone could see).
    assert!(single.join("DC/features/part-00001.parquet").is_file());
    let parts = files(&single.join("DC"))
        .into_iter()
        .filter(|f| {
            f.to_string_lossy().contains("-of-") && f.extension().is_some_and(|e| e == "parquet")
        })
        .count();
    assert!(parts > 1, "{parts} parquet parts");
    let frames = mimicit::tables::read_frames(&single.join("DC/frames.parquet")).unwrap();
    let unit_of = |id: &str| {
        frames
            .iter()
            .find(|f| f.image_id == id)
            .unwrap()
            .unit_id
            .clone()
    };
    let rows = mimicit::tables::read_dedup(&single.join("DC/dedup.parquet")).unwrap();
    assert!(
        rows.iter()
            .any(|r| unit_of(&r.dropped_id) != unit_of(&r.kept_id)),
        "no duplicate across units: {rows:?}"
    );
    assert_same_outputs(&single, &split);
    ok(&mimicit(dir.path(), &["verify", "split"]));
}

#[test]
fn embeddings_do_not_depend_on_batch_neighbours() {
    // The basis of the byte-identical claim for features: a picture's vector is the same bits
    // whichever pictures share its batch.
    let dir = tempfile::tempdir().unwrap();
    let out = run_demo(dir.path());
    let all = dir.path().join("all");
    let some = dir.path().join("some");
    let frames = mimicit::tables::read_frames(&out.join("DC/frames.parquet")).unwrap();
    for (k, f) in frames.iter().enumerate() {
        let name = format!("{}.png", f.image_id);
        std::fs::create_dir_all(&all).unwrap();
        std::fs::copy(out.join("DC").join(&f.file), all.join(&name)).unwrap();
        if k % 3 == 1 {
            std::fs::create_dir_all(&some).unwrap();
            std::fs::copy(out.join("DC").join(&f.file), some.join(&name)).unwrap();
        }
    }
    let embed = |from: &Path, to: &str| {
        let o = mimicit(
            dir.path(),
            &[
                "embed",
                from.to_str().unwrap(),
                "--model",
                "demo/model",
                "--batch",
                "4",
                "--out",
                to,
            ],
        );
        ok(&o);
        mimicit::tables::read_features(&dir.path().join(to)).unwrap()
    };
    let (all_ids, dim, all_v) = embed(&all, "all.parquet");
    let (some_ids, _, some_v) = embed(&some, "some.parquet");
    assert!(some_ids.len() >= 5 && all_ids.len() > some_ids.len());
    for (j, id) in some_ids.iter().enumerate() {
        let i = all_ids.iter().position(|x| x == id).unwrap();
        let (a, b) = (
            &all_v[i * dim..(i + 1) * dim],
            &some_v[j * dim..(j + 1) * dim],
        );
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(a), bits(b), "{id}: another vector in another batch");
    }
}

#[test]
fn partition_flags_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    copy_demo(dir.path());
    let run = |args: &[&str]| mimicit(dir.path(), args);
    for bad in ["3/3", "1/0", "a/b", "2"] {
        let o = run(&[
            "scan",
            "scenarios/demo.toml",
            "--out",
            "out",
            "--partition",
            bad,
        ]);
        assert_eq!(o.status.code(), Some(2), "{bad}: {}", stderr(&o));
        assert!(stderr(&o).contains("--partition"), "{}", stderr(&o));
    }
    // Whole-corpus stages asked for by name in a partition: bad usage, said in one line.
    let o = run(&[
        "pack",
        "scenarios/demo.toml",
        "--out",
        "out",
        "--partition",
        "0/2",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("mimicit merge"), "{}", stderr(&o));
    let o = run(&[
        "dedup",
        "scenarios/demo.toml",
        "--out",
        "out",
        "--partition",
        "0/2",
        "--set",
        "dedup.scope=corpus",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("dedup.scope = corpus"),
        "{}",
        stderr(&o)
    );
    let o = run(&[
        "dedup",
        "scenarios/demo.toml",
        "--out",
        "out",
        "--partition",
        "0/2",
        "--dry-run",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(!dir.path().join("out/partitions").exists());
}

#[test]
fn merge_refuses_incomplete_or_mismatched_partitions() {
    let dir = tempfile::tempdir().unwrap();
    copy_demo(dir.path());
    let run = |args: &[&str]| mimicit(dir.path(), args);
    let merge = || run(&["merge", "scenarios/demo.toml", "--out", "out"]);

    let o = merge();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("no partition run folders"),
        "{}",
        stderr(&o)
    );

    ok(&run(&[
        "run",
        "scenarios/demo.toml",
        "--out",
        "out",
        "--partition",
        "0/2",
    ]));
    let o = run(&[
        "merge",
        "scenarios/demo.toml",
        "--out",
        "out",
        "--partitions",
        "2",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("1-of-2"), "{}", stderr(&o));

    // The other partition with other settings: named, nothing merged.
    ok(&run(&[
        "run",
        "scenarios/demo.toml",
        "--out",
        "out",
        "--partition",
        "1/2",
        "--set",
        "keyframes.fps=2",
    ]));
    let o = merge();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("1-of-2") && err.contains("other settings"),
        "{err}"
    );
    assert!(!dir.path().join("out/DC/DC.parquet").exists());

    // Stopped half way (features not run): the stage some partitions lack is named.
    ok(&run(&[
        "run",
        "scenarios/demo.toml",
        "--out",
        "out",
        "--partition",
        "1/2",
        "--stages",
        "scan,keyframes,dedup",
    ]));
    let o = merge();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("features") && err.contains("1-of-2"), "{err}");

    // Once both are finished with the same settings, the merge goes through.
    ok(&run(&[
        "run",
        "scenarios/demo.toml",
        "--out",
        "out",
        "--partition",
        "1/2",
    ]));
    ok(&merge());
    ok(&run(&["verify", "out"]));
}

/// Why the Slurm test cannot run here, if so.
fn slurm_missing() -> Option<String> {
    root_and_commands(
        "slurmd must launch the jobs",
        &[
            "munged",
            "slurmctld",
            "slurmd",
            "sbatch",
            "scontrol",
            "sinfo",
        ],
        "Debian's slurm-wlm and munge; scripts/setup.sh installs them",
    )
}

/// Why a test that needs root and `commands` cannot run here (`root_why`: what root is for,
/// `hint`: what installs the commands), if so.
fn root_and_commands(root_why: &str, commands: &[&str], hint: &str) -> Option<String> {
    let uid = Command::new("id").arg("-u").output().ok()?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        return Some(format!("not root ({root_why})"));
    }
    for cmd in commands {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {cmd}")])
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            return Some(format!("{cmd} not found ({hint})"));
        }
    }
    None
}

/// Stops the local cluster when the test ends, passed or not.
struct Cluster {
    state: PathBuf,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new(repo().join("scripts/slurm/local-cluster.sh"))
            .arg("stop")
            .env("MIMICIT_SLURM_DIR", &self.state)
            .status();
    }
}

fn job_state(conf: &Path, job: &str) -> String {
    let o = Command::new("scontrol")
        .args(["show", "job", "-o", job])
        .env("SLURM_CONF", conf)
        .output()
        .expect("scontrol");
    let text = String::from_utf8_lossy(&o.stdout);
    // An array job prints one line per task: report every task's state.
    let mut states: Vec<String> = text
        .split_whitespace()
        .filter_map(|w| w.strip_prefix("JobState="))
        .map(str::to_string)
        .collect();
    states.sort();
    states.dedup();
    states.join(",")
}

#[test]
fn slurm_job_array_and_merge_equal_a_single_run() {
    if let Some(why) = slurm_missing() {
        crate::util::skip(&format!("the Slurm test: {why}"));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = run_demo(dir.path());
    let state = dir.path().join("slurm-state");
    let script = repo().join("scripts/slurm");
    // Ports of this test process's own, so that a second suite running on the machine (or
    // daemons a killed one left) cannot collide with this one.
    let port = 16817 + 2 * (std::process::id() % 5000);
    let o = Command::new(script.join("local-cluster.sh"))
        .arg("start")
        .env("MIMICIT_SLURM_DIR", &state)
        .env("MIMICIT_SLURM_PORT", port.to_string())
        .output()
        .unwrap();
    let cluster = Cluster { state };
    assert!(
        o.status.success(),
        "local-cluster.sh start:\n{}{}",
        stdout(&o),
        stderr(&o)
    );
    let conf = cluster.state.join("slurm.conf");
    assert!(stdout(&o).contains(&format!("SLURM_CONF={}", conf.display())));

    let o = Command::new(script.join("submit.sh"))
        .args(["scenarios/demo.toml", "split", "3", "--threads", "1"])
        .current_dir(dir.path())
        .env("SLURM_CONF", &conf)
        .env("MIMICIT", binary())
        .env("SBATCH_TIMELIMIT", "10")
        .output()
        .unwrap();
    assert!(o.status.success(), "submit.sh: {}", stderr(&o));
    let ids: Vec<String> = stdout(&o).split_whitespace().map(String::from).collect();
    assert_eq!(ids.len(), 2, "submit.sh printed {:?}", stdout(&o));
    let (array, merge) = (&ids[0], &ids[1]);

    // Bounded wait for the merge (it runs after every task of the array).
    let limit = Duration::from_secs(300);
    let start = Instant::now();
    let mut state = job_state(&conf, merge);
    while ![
        "COMPLETED",
        "FAILED",
        "CANCELLED",
        "TIMEOUT",
        "NODE_FAIL",
        "OUT_OF_MEMORY",
    ]
    .contains(&state.as_str())
        && start.elapsed() < limit
    {
        std::thread::sleep(Duration::from_secs(1));
        state = job_state(&conf, merge);
    }
    let split = dir.path().join("split");
    let logs = || {
        let mut text = String::new();
        for f in files(&split.join("partitions")) {
            if f.extension().is_some_and(|e| e == "log") {
                let body = std::fs::read_to_string(split.join("partitions").join(&f)).unwrap();
                text.push_str(&format!("== {}\n{body}\n", f.display()));
            }
        }
        for f in ["slurmctld.log", "slurmd.log"] {
            let body =
                std::fs::read_to_string(cluster.state.join("log").join(f)).unwrap_or_default();
            let tail: Vec<&str> = body.lines().rev().take(15).collect();
            text.push_str(&format!(
                "== {f} (last lines, newest first)\n{}\n",
                tail.join("\n")
            ));
        }
        text
    };
    assert_eq!(
        state,
        "COMPLETED",
        "merge job {merge} (array {array}: {}) after {:?}\n{}",
        job_state(&conf, array),
        start.elapsed(),
        logs()
    );
    assert_eq!(job_state(&conf, array), "COMPLETED", "{}", logs());
    for i in 0..3 {
        assert!(split
            .join(format!("partitions/slurm-{array}_{i}.log"))
            .is_file());
    }
    assert_same_outputs(&out, &split);
    ok(&mimicit(dir.path(), &["verify", "split"]));
}

/// Why the Ray test cannot run here, if so: it needs root (for a network namespace of its own,
/// where Ray sees only loopback), `unshare` and `ip`, and the venv's `ray`.
fn ray_missing() -> Option<String> {
    root_and_commands(
        "the test makes a network namespace for the Ray cluster",
        &["unshare", "ip", "ray"],
        "util-linux, iproute2 and the venv's ray: scripts/setup.sh",
    )
}

#[test]
fn ray_tasks_and_merge_equal_a_single_run() {
    if let Some(why) = ray_missing() {
        crate::util::skip(&format!("the Ray test: {why}"));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = run_demo(dir.path());
    // A one-node Ray cluster in a network namespace of its own: only loopback exists there, so
    // every Ray process listens and talks on 127.0.0.1, and all of it ends with the namespace.
    let script = format!(
        "set -e; ip link set lo up; \
         trap 'ray stop --force > /dev/null 2>&1 || true' EXIT; \
         ray start --head --port 6391 --num-cpus 2 --include-dashboard false \
           --disable-usage-stats > ray-start.log 2>&1; \
         timeout 300 python {run} scenarios/demo.toml --out split --partitions 3 \
           --bin {bin} --address 127.0.0.1:6391 > ray-run.log 2>&1",
        run = repo().join("scripts/ray/run.py").display(),
        bin = binary().display(),
    );
    let o = Command::new("timeout")
        .args(["420", "unshare", "--net", "bash", "-c", &script])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let log = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap_or_default();
    assert!(
        o.status.success(),
        "ray run failed ({}):\n{}\n{}\n{}",
        o.status,
        stderr(&o),
        log("ray-start.log"),
        log("ray-run.log")
    );
    let run_log = log("ray-run.log");
    for i in 0..3 {
        assert!(
            run_log.contains(&format!("partition {i}/3: exit 0")),
            "{run_log}"
        );
    }
    assert!(run_log.contains("merge: exit 0"), "{run_log}");
    let split = dir.path().join("split");
    assert_same_outputs(&out, &split);
    ok(&mimicit(dir.path(), &["verify", "split"]));
}
