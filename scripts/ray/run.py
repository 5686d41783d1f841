#!/usr/bin/env python3
"""Runs a scenario as N partitions on a Ray cluster, then the merge: OUT then holds what one
`mimicit run` over the whole corpus writes, byte for byte.

Usage:
  python scripts/ray/run.py SCENARIO.toml --out OUT --partitions N [--bin mimicit]
      [--address auto|HOST:PORT] [--num-gpus G] [--set KEY=VALUE ...]

Each partition is one Ray task running `mimicit run SCENARIO --out OUT --partition i/N` (exit
status 3, finished with rejects, counts as success); when all have finished, the merge runs in
this process. OUT must be on storage every node sees. `--address auto` joins the cluster that
`ray start --head` started on this machine; without a cluster Ray starts a local one.
"""

import argparse
import os
import subprocess
import sys

import ray


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("scenario")
    ap.add_argument("--out", required=True)
    ap.add_argument("--partitions", type=int, required=True)
    ap.add_argument("--bin", default="mimicit")
    ap.add_argument("--address", default=None)
    ap.add_argument("--num-gpus", type=float, default=0)
    ap.add_argument("--set", action="append", default=[], dest="sets")
    a = ap.parse_args()
    sets = [x for s in a.sets for x in ("--set", s)]
    binary = os.path.abspath(a.bin) if os.path.sep in a.bin else a.bin
    scenario, out = os.path.abspath(a.scenario), os.path.abspath(a.out)

    ray.init(address=a.address, include_dashboard=False, log_to_driver=False)

    @ray.remote(num_gpus=a.num_gpus, max_retries=0)
    def partition(i: int):
        cmd = [binary, "run", scenario, "--out", out, "--partition", f"{i}/{a.partitions}",
               "--progress", "none", *sets]
        r = subprocess.run(cmd, capture_output=True, text=True)
        return i, r.returncode, r.stderr[-4000:]

    failed = []
    for i, code, err in ray.get([partition.remote(i) for i in range(a.partitions)]):
        print(f"partition {i}/{a.partitions}: exit {code}", file=sys.stderr)
        if code not in (0, 3):
            failed.append(i)
            print(err, file=sys.stderr)
    ray.shutdown()
    if failed:
        print(f"partitions {failed} failed: merge not started", file=sys.stderr)
        return 1
    r = subprocess.run([binary, "merge", scenario, "--out", out, "--partitions",
                        str(a.partitions), "--progress", "none", *sets])
    print(f"merge: exit {r.returncode}", file=sys.stderr)
    return 0 if r.returncode in (0, 3) else 1


if __name__ == "__main__":
    sys.exit(main())
