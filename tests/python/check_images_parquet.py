#!/usr/bin/env python3
"""Checks an images parquet the way the Otter trainer loads it.

Usage: check_images_parquet.py IMAGES.parquet EXPECTED.json

EXPECTED.json is either a list of image ids or an object {image_id: spec}, where spec may hold
"bytes" (length of the encoded image), "width", "height" and "first_pixel" ([r, g, b] of the
top-left pixel after .convert("RGB")); every key of a spec is optional.

Loads the file twice:
  1. as Otter's MimicitDataset does: pq.ParquetFile(p).iter_batches(1000) -> batch.to_pandas()
     -> pd.concat -> df.loc[image_id]["base64"] -> base64.urlsafe_b64decode
     -> PIL.Image.open(io.BytesIO(...)).convert("RGB");
  2. with pd.read_parquet(p), which must give the same index.
Prints one line per failure and a summary line "N/M images ok"; exits 1 on any failure.
"""

import base64
import io
import json
import sys

import pandas as pd
import pyarrow.parquet as pq
from PIL import Image


def load_like_otter(path):
    frames = [batch.to_pandas() for batch in pq.ParquetFile(path).iter_batches(1000)]
    return pd.concat(frames) if frames else pd.DataFrame()


def check_image(df, image_id, spec):
    raw = base64.urlsafe_b64decode(df.loc[image_id]["base64"])
    img = Image.open(io.BytesIO(raw)).convert("RGB")
    problems = []
    if "bytes" in spec and len(raw) != spec["bytes"]:
        problems.append(f"{len(raw)} bytes, expected {spec['bytes']}")
    if "width" in spec and img.width != spec["width"]:
        problems.append(f"width {img.width}, expected {spec['width']}")
    if "height" in spec and img.height != spec["height"]:
        problems.append(f"height {img.height}, expected {spec['height']}")
    if "first_pixel" in spec and list(img.getpixel((0, 0))) != list(spec["first_pixel"]):
        problems.append(f"first pixel {img.getpixel((0, 0))}, expected {spec['first_pixel']}")
    return problems


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    path, expected_path = sys.argv[1], sys.argv[2]
    with open(expected_path) as f:
        expected = json.load(f)
    if isinstance(expected, list):
        expected = {image_id: {} for image_id in expected}

    failures = []
    df = load_like_otter(path)
    if "base64" not in df.columns:
        failures.append(f"iter_batches: no base64 column, columns are {list(df.columns)}")
    if not df.index.is_unique:
        failures.append("iter_batches: duplicate image ids in the index")

    ok = 0
    for image_id, spec in expected.items():
        try:
            problems = check_image(df, image_id, spec)
        except Exception as e:  # noqa: BLE001 - any failure of the loader path is reported
            problems = [f"{type(e).__name__}: {e}"]
        if problems:
            failures.append(f"{image_id}: " + "; ".join(problems))
        else:
            ok += 1

    whole = pd.read_parquet(path)
    if list(whole.index) != list(df.index):
        failures.append("pd.read_parquet: index differs from the iter_batches index")
    extra = set(map(str, whole.index)) - set(expected)
    if extra:
        failures.append(f"pd.read_parquet: unexpected ids {sorted(extra)[:10]}")

    for line in failures:
        print(f"FAIL {line}")
    print(f"{ok}/{len(expected)} images ok; {len(df)} rows, index name {df.index.name!r}, "
          f"{pq.ParquetFile(path).metadata.num_row_groups} row group(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
