#!/usr/bin/env python3
"""Side by side: near-duplicate search over a folder with imagededup's DHash (what Python users
run today) against `mimicit dedup DIR` (pHash + multi-index Hamming index), same pictures, same
threshold, same machine.

    dedup_imagededup.py MIMICIT_BIN WORK_DIR [N] [THRESHOLD]

Makes N pictures (256x256 JPEG) in WORK_DIR/pics: N/4 distinct crops of the fixture pictures,
each with three variants (JPEG quality 60, shifted by 2 px, brightness +3 %), then times both
tools. Needs imagededup importable by this interpreter (a separate venv: it pins its own torch).
Prints one JSON line per tool: seconds, pictures/s, duplicates found, planted pairs found."""
import glob
import json
import os
import random
import subprocess
import sys
import time

from PIL import Image, ImageEnhance


def make(work, n):
    pics = os.path.join(work, "pics")
    os.makedirs(pics, exist_ok=True)
    here = os.path.dirname(os.path.abspath(__file__))
    fixtures = os.path.join(here, "..", "..", "tests", "fixtures")
    bases = [Image.open(p).convert("RGB") for p in sorted(
        glob.glob(os.path.join(fixtures, "coco/images/*.jpg"))
        + glob.glob(os.path.join(fixtures, "scannet/*/color/*.jpg")))]
    rng = random.Random(0)
    groups = n // 4
    for g in range(groups):
        b = bases[g % len(bases)]
        side = rng.randint(160, min(b.size) - 4)
        x, y = rng.randint(0, b.width - side - 3), rng.randint(0, b.height - side - 3)
        crop = lambda dx=0: b.crop((x + dx, y, x + dx + side, y + side)).resize((256, 256), Image.BICUBIC)
        crop().save(f"{pics}/g{g:06d}_0.jpg", quality=95)
        crop().save(f"{pics}/g{g:06d}_1.jpg", quality=60)
        crop(2).save(f"{pics}/g{g:06d}_2.jpg", quality=95)
        ImageEnhance.Brightness(crop()).enhance(1.03).save(f"{pics}/g{g:06d}_3.jpg", quality=95)
    return pics, groups


def planted_found(pairs):
    """Pairs (a, b) whose two files come from the same planted group."""
    return sum(1 for a, b in pairs if a.split("_")[0] == b.split("_")[0])


def main():
    binary, work = sys.argv[1], sys.argv[2]
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 2000
    k = int(sys.argv[4]) if len(sys.argv) > 4 else 10
    pics, groups = make(work, n)
    from imagededup.methods import DHash  # noqa: E402 (after the pictures exist)

    start = time.perf_counter()
    dh = DHash(verbose=False)
    enc = dh.encode_images(image_dir=pics)
    hashed = time.perf_counter()
    dups = dh.find_duplicates(encoding_map=enc, max_distance_threshold=k)
    done = time.perf_counter()
    pairs = {tuple(sorted((os.path.splitext(a)[0], os.path.splitext(b)[0])))
             for a, bs in dups.items() for b in bs}
    print(json.dumps({"tool": "imagededup DHash", "pictures": len(enc), "threshold": k,
                      "seconds": round(done - start, 3), "hash_seconds": round(hashed - start, 3),
                      "search_seconds": round(done - hashed, 3),
                      "pictures_per_s": round(len(enc) / (done - start), 1),
                      "duplicate_pairs": len(pairs), "planted_pairs_found": planted_found(pairs),
                      "planted_pairs": groups * 6}))

    out = os.path.join(work, "dups.parquet")
    start = time.perf_counter()
    subprocess.run([binary, "--progress", "none", "-q", "dedup", pics, "--out", out,
                    "--set", f"dedup.max_hamming={k}"], check=True)
    done = time.perf_counter()
    import pandas as pd
    rows = pd.read_parquet(out)
    # mimicit maps each dropped picture to the one kept: a group of four gives three rows.
    kept_pairs = {(r.dropped_id, r.kept_id) for r in rows.itertuples()}
    print(json.dumps({"tool": "mimicit dedup DIR", "pictures": n, "threshold": k,
                      "seconds": round(done - start, 3),
                      "pictures_per_s": round(n / (done - start), 1),
                      "dropped": len(rows), "dropped_onto_own_group": planted_found(kept_pairs),
                      "plantable_drops": groups * 3}))


if __name__ == "__main__":
    main()
