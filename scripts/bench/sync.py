#!/usr/bin/env python3
"""Durability of many small files: one syncfs(2) of the filesystem (mimicit before) against
fdatasync of only the files written, with writeback started at write time by
sync_file_range(SYNC_FILE_RANGE_WRITE) and the syncs on 4 threads (mimicit now,
`atomic::sync_files`). Each round writes N frame-sized files into 16 folders, then makes them
durable. Three conditions: "idle"; "after" (another process wrote 4 GB without syncing and
exited just before the round, as when a run follows a large copy); "busy" (such a writer runs
during the whole round).

    python3 scripts/bench/sync.py DIR [N] [ROUNDS]

DIR must be on the filesystem to measure. Prints the seconds spent making the files durable
(the write phase is reported too) and the ratio of the two strategies per condition.
"""
import concurrent.futures as cf
import ctypes
import os
import shutil
import statistics
import subprocess
import sys
import time

libc = ctypes.CDLL("libc.so.6", use_errno=True)
SYNC_FILE_RANGE_WRITE = 2


def write_files(d, n, kick):
    payload = os.urandom(60_000)  # a 224x224 PNG of a photograph is 50-70 kB
    paths = []
    for i in range(n):
        sub = os.path.join(d, f"{i % 16:02x}")
        os.makedirs(sub, exist_ok=True)
        p = os.path.join(sub, f"{i:06d}.png")
        with open(p, "wb") as f:
            f.write(payload)
            if kick:
                libc.sync_file_range(f.fileno(), ctypes.c_longlong(0), ctypes.c_longlong(0),
                                     SYNC_FILE_RANGE_WRITE)
        paths.append(p)
    return paths


def fdatasync(p):
    fd = os.open(p, os.O_RDONLY)
    try:
        os.fdatasync(fd)
    finally:
        os.close(fd)


def fsync_dirs(paths, d):
    for sub in sorted({os.path.dirname(p) for p in paths}) + [d]:
        fd = os.open(sub, os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)


def one(base, n, mode):
    d = os.path.join(base, f"round-{mode}-{time.time_ns()}")
    os.makedirs(d)
    t0 = time.perf_counter()
    paths = write_files(d, n, kick=(mode == "files"))
    t1 = time.perf_counter()
    if mode == "syncfs":
        fd = os.open(d, os.O_RDONLY)
        libc.syncfs(fd)
        os.close(fd)
    else:
        with cf.ThreadPoolExecutor(4) as ex:
            list(ex.map(fdatasync, paths))
    fsync_dirs(paths, d)
    t2 = time.perf_counter()
    shutil.rmtree(d)
    return t1 - t0, t2 - t1


def main():
    base = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 1800
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    os.makedirs(base, exist_ok=True)
    results = {}
    conditions = ("idle", "after", "busy")
    other = os.path.join(base, "other-tool.bin")
    for busy in conditions:
        for r in range(rounds):
            for mode in ("syncfs", "files"):
                os.sync()
                writer = None
                if busy == "after":
                    subprocess.run(["dd", "if=/dev/zero", f"of={other}", "bs=1M", "count=4000",
                                    "status=none"], check=True)
                if busy == "busy":
                    writer = subprocess.Popen(
                        ["dd", "if=/dev/zero", f"of={os.path.join(base, 'other-tool.bin')}",
                         "bs=1M", "count=8000", "status=none"])
                    time.sleep(2.0)  # the other tool has dirtied some GB by now
                w, s = one(base, n, mode)
                if writer:
                    writer.kill()
                    writer.wait()
                if os.path.exists(other):
                    os.remove(other)
                results.setdefault((busy, mode), []).append((w, s))
    os.sync()
    print(f"{n} files of 60 kB, {rounds} rounds, median seconds")
    print("| filesystem | strategy | write | make durable |")
    print("|---|---|---|---|")
    for busy in conditions:
        for mode in ("syncfs", "files"):
            rs = results[(busy, mode)]
            w = statistics.median(x for x, _ in rs)
            s = statistics.median(y for _, y in rs)
            name = "syncfs of the filesystem" if mode == "syncfs" else "fdatasync of our files"
            print(f"| {busy} | {name} | {w:.2f} | {s:.2f} |")
        a = statistics.median(y for _, y in results[(busy, 'files')])
        b = statistics.median(y for _, y in results[(busy, 'syncfs')])
        print(f"| {busy} | ratio files/syncfs (durable phase) | | {a / b:.2f}x |")


if __name__ == "__main__":
    main()
