#!/usr/bin/env python3
"""Parse speed of a COCO-sized corpus: writes a synthetic train2017-like corpus (N images, 80
categories, ~7 instances per image with polygon segmentations, 5 captions per image, empty image
files), then times `mimicit scan` of the CGD scenario over it against Python's `json.load` of the
same two files (what Python converters start with), each in its own process.

    coco_parse.py MIMICIT_BIN WORK_DIR [N=100000]

Prints one JSON line per side: seconds, peak RSS (MiB), and the annotation bytes."""
import json
import os
import random
import subprocess
import sys
import time


def make(work, n):
    ann = os.path.join(work, "annotations")
    media = os.path.join(work, "train2017")
    os.makedirs(ann, exist_ok=True)
    os.makedirs(media, exist_ok=True)
    rng = random.Random(0)
    cats = [{"id": i + 1, "name": f"category{i + 1}", "supercategory": "thing"} for i in range(80)]
    images, anns, caps = [], [], []
    aid = 1
    for i in range(n):
        iid = 100000 + i * 7
        name = f"{iid:012d}.jpg"
        images.append({"id": iid, "file_name": name, "width": 640, "height": 480,
                       "license": 1, "date_captured": "2013-11-14 17:02:52"})
        open(os.path.join(media, name), "wb").close()
        for _ in range(rng.randint(3, 11)):
            x, y = rng.uniform(0, 500), rng.uniform(0, 380)
            w, h = rng.uniform(5, 140), rng.uniform(5, 100)
            poly = [round(v, 2) for _ in range(12) for v in (x + rng.uniform(0, w), y + rng.uniform(0, h))]
            anns.append({"id": aid, "image_id": iid, "category_id": rng.randint(1, 80),
                         "bbox": [round(x, 2), round(y, 2), round(w, 2), round(h, 2)],
                         "area": round(w * h, 2), "iscrowd": 0, "segmentation": [poly]})
            aid += 1
        for k in range(5):
            caps.append({"id": iid * 10 + k, "image_id": iid,
                         "caption": f"A photo number {i} showing thing {k} on a table near a window."})
    info = {"description": "synthetic", "version": "1.0", "year": 2017}
    with open(os.path.join(ann, "instances_train2017.json"), "w") as f:
        json.dump({"info": info, "licenses": [], "images": images, "annotations": anns,
                   "categories": cats}, f)
    with open(os.path.join(ann, "captions_train2017.json"), "w") as f:
        json.dump({"info": info, "licenses": [], "images": images, "annotations": caps}, f)
    return sum(os.path.getsize(os.path.join(ann, p)) for p in os.listdir(ann))


def timed(cmd):
    out = subprocess.run(["/usr/bin/time", "-f", "%e %M"] + cmd, capture_output=True, text=True)
    if out.returncode not in (0, 3):
        sys.exit(f"{cmd[0]} failed: {out.stderr[-2000:]}")
    wall, rss = out.stderr.strip().splitlines()[-1].split()
    return float(wall), int(rss) / 1024


def main():
    binary, work = sys.argv[1], sys.argv[2]
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 100_000
    size = make(work, n)
    scenario = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                            "scenarios", "coco_general_difference.toml")
    wall, rss = timed([binary, "--progress", "none", "-q", "scan", scenario, "--out",
                       os.path.join(work, "out"), "--set", f"source.root={work}"])
    print(json.dumps({"side": "mimicit scan (CGD)", "images": n, "annotation_mib": round(size / 2**20, 1),
                      "seconds": wall, "peak_rss_mib": round(rss)}))
    code = ("import json,sys\nfor p in sys.argv[1:]:\n    json.load(open(p))\n")
    files = [os.path.join(work, "annotations", f) for f in
             ("instances_train2017.json", "captions_train2017.json")]
    wall, rss = timed([sys.executable, "-c", code] + files)
    print(json.dumps({"side": "python json.load of the two files", "images": n,
                      "seconds": wall, "peak_rss_mib": round(rss)}))


if __name__ == "__main__":
    main()
