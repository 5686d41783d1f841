#!/usr/bin/env python3
"""Reads mimicit's WebDataset shards with the `webdataset` package, as a training loader would.

Usage: read_webdataset.py OUT/{CODE}/wds
Prints, as JSON on stdout, every sample's key, its member extensions and its decoded .json; checks
that every image member decodes with PIL. Exits 1 on any failure."""
import io
import json
import os
import sys

import webdataset as wds
from PIL import Image


def main() -> int:
    folder = sys.argv[1]
    with open(os.path.join(folder, "index.json")) as f:
        index = json.load(f)
    urls = [os.path.join(folder, s["shard"]) for s in index["shards"]]
    samples = []
    for sample in wds.WebDataset(urls, shardshuffle=False, empty_check=False):
        exts = sorted(k for k in sample if not k.startswith("__"))
        for ext in exts:
            if ext.endswith((".png", ".jpg")) or ext in ("png", "jpg"):
                Image.open(io.BytesIO(sample[ext])).convert("RGB")
        samples.append({"key": sample["__key__"], "members": exts, "json": json.loads(sample["json"])})
    json.dump({"samples": samples, "expected": sum(s["samples"] for s in index["shards"])}, sys.stdout)
    return 0 if len(samples) == sum(s["samples"] for s in index["shards"]) else 1


if __name__ == "__main__":
    sys.exit(main())
