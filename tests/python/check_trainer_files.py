#!/usr/bin/env python3
"""Checks a mimicit OUT folder by making the calls Otter's training loader makes.

Usage: check_trainer_files.py OUT [RESAMPLE_FRAMES]

The loader followed is `MimicitDataset` of the Otter training pipeline: repository
Luodian/Otter, path pipeline/mimicit_utils/mimicit_dataset.py, commit
a87e8f05742412c4ab7ee5866840bb1f248a9c4e (its `--resample_frames` default, 32, is in
pipeline/train/train_args.py). Written here from its behaviour, step by step:

1. data.yaml: groups IMAGE_TEXT / TEXT_ONLY / IMAGE_TEXT_IN_CONTEXT / VIDEO_TEXT, each entry
   read with .get("mimicit_path"), .get("images_path"), .get("train_config_path"),
   .get("num_samples", 0), .get("task_description", "") (paths relative to OUT here, as the
   trainer is started from there).
2. Instructions: json.loads(bytes)["data"] (the loader uses orjson, which decodes the same JSON
   to the same objects), merged into one dict over entries.
3. Train config: json.loads(bytes) -> {instruction id: [in-context ids]}; the ids trained on are
   its keys, resampled to num_samples with the loader's rule (0 or -1: all; fewer: a seeded
   random.sample; more: repeated then seeded random.choices).
4. Images: pq.ParquetFile(path).iter_batches(batch_size=1000) -> to_pandas() -> pd.concat, one
   frame over entries; a picture is images.loc[image_id]["base64"] -> base64.urlsafe_b64decode
   -> PIL Image.open(...).convert("RGB"), then resized to the patch size (224, bicubic).
5. Per trained id (process_image_text_pair / process_general): the item must exist with
   "instruction" and "answer"; its in-context ids are train_config[id], each of which must be
   in the instructions with both fields; image_ids defaults to []; VIDEO_TEXT resamples the
   unit's frames to exactly RESAMPLE_FRAMES with np.linspace(0, n - 1, k, dtype=int) (repeating
   frames when a unit has fewer), the other image groups load every image id. The text is
   built as the "simple" instruction format does: "<image>User:{q} GPT:<answer>{a}<|endofchunk|>"
   with the question and answer stripped as pre_question / pre_answer do (keep_symbols).

Exits 1 on any failure, with every failure printed."""

import base64
import io
import json
import os
import random
import sys

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import yaml
from PIL import Image

GROUPS = ("IMAGE_TEXT", "TEXT_ONLY", "IMAGE_TEXT_IN_CONTEXT", "VIDEO_TEXT")
PATCH = 224


def resample_ids(ids, n):
    """The loader's resampling of the trained ids to num_samples."""
    if n in (0, -1) or n == len(ids):
        return ids
    random.seed(0)
    if n > len(ids):
        return ids * (n // len(ids)) + random.choices(ids, k=n % len(ids))
    return random.sample(ids, n)


def read_images(path):
    batches = [b.to_pandas() for b in pq.ParquetFile(path).iter_batches(batch_size=1000)]
    return pd.concat(batches)


def text_of(q, a, with_image):
    q = q.strip(" ").strip("\n")
    a = a.strip().replace("\r\n", "\n")
    prefix = "<image>User:" if with_image else "User:"
    return f"{prefix}{q} GPT:<answer>{a}<|endofchunk|>"


def main() -> int:
    out = sys.argv[1]
    resample_frames = int(sys.argv[2]) if len(sys.argv) > 2 else 32
    with open(os.path.join(out, "data.yaml")) as f:
        config = yaml.safe_load(f)
    failures = []
    n_entries = n_trained = n_img = 0
    for group, entries in config.items():
        if group not in GROUPS:
            failures.append(f"unknown group {group}")
            continue
        dataset, train_config, trained, frames = {}, {}, [], []
        loaded = set()
        for name, entry in entries.items():
            n_entries += 1
            mimicit_path = os.path.join(out, entry.get("mimicit_path", ""))
            with open(mimicit_path, "rb") as f:
                data = json.loads(f.read())["data"]
            dataset.update(data)
            cfg_path = entry.get("train_config_path", "")
            if cfg_path:
                with open(os.path.join(out, cfg_path), "rb") as f:
                    cfg = json.loads(f.read())
            else:
                cfg = {k: [] for k in data}
            if set(cfg) != set(data):
                failures.append(f"{name}: train config ids differ from instruction ids")
            trained += resample_ids(list(cfg), entry.get("num_samples", 0))
            train_config.update(cfg)
            images_path = entry.get("images_path", "")
            if images_path and images_path not in loaded:
                if not images_path.endswith(".parquet"):
                    failures.append(f"{name}: images_path {images_path} is not a parquet file")
                    continue
                frames.append(read_images(os.path.join(out, images_path)))
                loaded.add(images_path)
        images = pd.concat(frames, axis=0) if frames else pd.DataFrame()
        if frames and images.index.name != "image_id":
            failures.append(f"{group}: parquet index is {images.index.name!r}, not image_id")
        decoded = {}
        for train_id in trained:
            n_trained += 1
            item = dataset.get(train_id)
            if item is None or "instruction" not in item or "answer" not in item:
                failures.append(f"{group}: {train_id} is invalid (the loader exits here)")
                continue
            texts = []
            for i, cid in enumerate(train_config[train_id] + [train_id]):
                example = dataset.get(cid)
                if example is None or "instruction" not in example or "answer" not in example:
                    failures.append(f"{group}: {train_id} refers to missing in-context {cid}")
                    continue
                with_image = group == "IMAGE_TEXT_IN_CONTEXT" or (i == 0 and group != "TEXT_ONLY")
                texts.append(text_of(example["instruction"], example["answer"], with_image))
            if not "".join(texts):
                failures.append(f"{group}: {train_id}: empty text")
            ids = item.get("image_ids") or []
            if group == "VIDEO_TEXT":
                if not ids:
                    failures.append(f"{group}: {train_id}: a video unit without frames")
                    continue
                ids = [ids[i] for i in np.linspace(0, len(ids) - 1, resample_frames, dtype=int)]
                if len(ids) != resample_frames:
                    failures.append(f"{group}: {train_id}: {len(ids)} frames after resampling")
            elif group == "TEXT_ONLY":
                ids = []
            for image_id in ids:
                if image_id in decoded:
                    continue
                try:
                    raw = base64.urlsafe_b64decode(images.loc[image_id]["base64"])
                    img = Image.open(io.BytesIO(raw)).convert("RGB")
                    img.resize((PATCH, PATCH), Image.BICUBIC)
                    decoded[image_id] = img.size
                    n_img += 1
                except Exception as e:  # noqa: BLE001 - report every failure
                    failures.append(f"{group}: {train_id}: image {image_id}: {e!r}")
    for f in failures:
        print("FAIL", f)
    print(f"{n_entries} entries, {n_trained} trained ids, {n_img} images decoded, "
          f"{len(failures)} failures")
    return 1 if failures or n_entries == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
