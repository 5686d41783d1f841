#!/usr/bin/env python3
"""Checks a mimicit OUT folder the way an Otter-style trainer consumes it.

Usage: check_trainer_files.py OUT

Reads OUT/data.yaml with PyYAML; for every dataset entry loads the instructions json, the train
json and the images parquet (as Otter's MimicitDataset does: pq.ParquetFile(p).iter_batches()
-> to_pandas -> pd.concat -> df.loc[id]["base64"] -> urlsafe_b64decode -> PIL .convert("RGB")),
and checks that every image id of every instruction resolves in that entry's parquet and decodes,
that every in-context id exists, and that the train file lists exactly the instructions.
Prints a summary; exits 1 on any failure."""

import base64
import io
import json
import os
import sys

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import yaml
from PIL import Image


def load_images(path):
    frames = [b.to_pandas() for b in pq.ParquetFile(path).iter_batches(1000)]
    return pd.concat(frames) if frames else pd.DataFrame()


def main() -> int:
    out = sys.argv[1]
    with open(os.path.join(out, "data.yaml")) as f:
        config = yaml.safe_load(f)
    failures = []
    n_entries = n_ins = n_img = 0
    for group, entries in config.items():
        if group not in ("IMAGE_TEXT", "TEXT_ONLY", "IMAGE_TEXT_IN_CONTEXT", "VIDEO_TEXT"):
            failures.append(f"unknown group {group}")
            continue
        for name, entry in entries.items():
            n_entries += 1
            with open(os.path.join(out, entry["mimicit_path"])) as f:
                ins = json.load(f)
            with open(os.path.join(out, entry["train_config_path"])) as f:
                train = json.load(f)
            df = load_images(os.path.join(out, entry["images_path"]))
            if df.index.name != "image_id":
                failures.append(f"{name}: parquet index is {df.index.name!r}, not image_id")
            data = ins["data"]
            if set(train) != set(data):
                failures.append(f"{name}: train json keys differ from instruction ids")
            decoded = {}
            for ins_id, item in data.items():
                n_ins += 1
                for rel in item["rel_ins_ids"]:
                    if rel not in data:
                        failures.append(f"{name}: {ins_id} refers to missing {rel}")
                ids = item["image_ids"]
                if group == "VIDEO_TEXT" and ids:
                    # The loader resamples a unit's frames with linspace(0, n-1, k).
                    ids = [ids[int(i)] for i in np.linspace(0, len(ids) - 1, min(8, len(ids)))]
                for image_id in ids:
                    if image_id in decoded:
                        continue
                    try:
                        raw = base64.urlsafe_b64decode(df.loc[image_id]["base64"])
                        img = Image.open(io.BytesIO(raw)).convert("RGB")
                        decoded[image_id] = img.size
                        n_img += 1
                    except Exception as e:  # noqa: BLE001 - report every failure
                        failures.append(f"{name}: {ins_id}: image {image_id}: {e!r}")
    for f in failures:
        print("FAIL", f)
    print(f"{n_entries} entries, {n_ins} instructions, {n_img} images decoded, {len(failures)} failures")
    return 1 if failures or n_entries == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
