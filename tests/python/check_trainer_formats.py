#!/usr/bin/env python3
"""Loads a scenario's hf, llava and sharegpt outputs with the rules of the trainers that read them.

Usage: check_trainer_formats.py OUT/{CODE} CODE

- hf (OUT/{CODE}/hf): `datasets.load_dataset("parquet", data_dir=hf/data)` and `load_dataset`
  on the folder itself (as pushed to the Hub: the card's configs); every picture decoded to PIL;
  the features are id / images (list of Image) / messages (role, content parts) / scenario /
  unit_id / rel_ins_ids; each row's `{"type": "image"}` parts equal its pictures.
- llava (OUT/{CODE}/chat/{CODE}_llava.json): the rules of LLaVA's `LazySupervisedDataset`
  (haotian-liu/LLaVA, llava/train/train.py; LLaVA-NeXT's for lists of pictures): the file is a
  JSON list; a record with "image" joins each path to the image folder (chat/images) and opens
  it with PIL .convert("RGB"); the `<image>` tokens in its conversation equal its pictures;
  turns alternate "human" / "gpt", starting with "human".
- sharegpt (OUT/{CODE}/chat): LLaMA-Factory's documented `dataset_info.json` fields
  (data/README.md of hiyouga/LLaMA-Factory: file_name, formatting "sharegpt", columns messages /
  images, tags role_tag / content_tag / user_tag / assistant_tag); the file loaded with
  `datasets.load_dataset("json", data_files=...)` as LLaMA-Factory does; messages alternate the
  user and assistant tags starting with the user; `<image>` tokens equal the images, each path
  resolved against the dataset folder and opened.

Prints a summary; exits 1 on any failure."""

import base64
import glob
import json
import os
import sys

import datasets
import jsonschema
import pyarrow.parquet as pq
from PIL import Image

SCHEMAS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "schemas")


def schema(name):
    with open(os.path.join(SCHEMAS, name)) as f:
        return json.load(f)


def check_hf(folder, code, failures):
    rows = 0
    # Every row, as pyarrow reads it, against schemas/hf_row.schema.json.
    row_schema = schema("hf_row.schema.json")
    for part in sorted(glob.glob(os.path.join(folder, "data", "*.parquet"))):
        for row in pq.read_table(part).to_pylist():
            for img in row["images"]:
                img["bytes"] = base64.b64encode(img["bytes"]).decode()
            for e in jsonschema.Draft202012Validator(row_schema).iter_errors(row):
                failures.append(f"hf: {os.path.basename(part)}: {row['id']}: {e.message}")
    for ds in (
        datasets.load_dataset("parquet", data_dir=os.path.join(folder, "data"), split="train"),
        datasets.load_dataset(folder, split="train"),
    ):
        want = ["id", "images", "messages", "scenario", "unit_id", "rel_ins_ids"]
        if list(ds.features) != want:
            failures.append(f"hf: columns {list(ds.features)}, not {want}")
        if not isinstance(ds.features["images"].feature, datasets.Image):
            failures.append(f"hf: images are {ds.features['images']}, not a list of Image")
        ids = ds["id"]
        if len(set(ids)) != len(ids):
            failures.append("hf: repeated ids")
        for r in ds:
            rows += 1
            if r["scenario"] != code:
                failures.append(f"hf: {r['id']}: scenario {r['scenario']}")
            for img in r["images"]:
                if not isinstance(img, Image.Image):
                    failures.append(f"hf: {r['id']}: not decoded: {type(img)}")
                img.convert("RGB")
            parts = [p for m in r["messages"] for p in m["content"]]
            if sum(p["type"] == "image" for p in parts) != len(r["images"]):
                failures.append(f"hf: {r['id']}: image parts differ from pictures")
            roles = [m["role"] for m in r["messages"]]
            if roles != ["user", "assistant"] * (len(roles) // 2) or not roles:
                failures.append(f"hf: {r['id']}: roles {roles}")
    return rows // 2


def check_llava(chat, code, failures):
    with open(os.path.join(chat, f"{code}_llava.json")) as f:
        records = json.load(f)
    for e in jsonschema.Draft202012Validator(schema("llava.schema.json")).iter_errors(records):
        failures.append(f"llava: {e.message}")
    folder = os.path.join(chat, "images")
    pictures = 0
    for rec in records:
        files = rec.get("image", [])
        files = [files] if isinstance(files, str) else files
        for name in files:
            Image.open(os.path.join(folder, name)).convert("RGB")
            pictures += 1
        conv = rec["conversations"]
        tokens = sum(turn["value"].count("<image>") for turn in conv)
        if tokens != len(files):
            failures.append(f"llava: {rec['id']}: {tokens} <image> tokens, {len(files)} pictures")
        froms = [t["from"] for t in conv]
        if froms != ["human", "gpt"] * (len(froms) // 2) or not froms:
            failures.append(f"llava: {rec['id']}: turns {froms}")
    return len(records), pictures


def check_sharegpt(chat, code, failures):
    with open(os.path.join(chat, "dataset_info.json")) as f:
        info = json.load(f)
    for e in jsonschema.Draft202012Validator(schema("dataset_info.schema.json")).iter_errors(info):
        failures.append(f"dataset_info: {e.message}")
    with open(os.path.join(chat, f"{code}_sharegpt.json")) as f:
        records = json.load(f)
    for e in jsonschema.Draft202012Validator(schema("sharegpt.schema.json")).iter_errors(records):
        failures.append(f"sharegpt: {e.message}")
    entry = info[f"mimicit_{code}"]
    if entry.get("formatting") != "sharegpt":
        failures.append("sharegpt: formatting is not sharegpt")
    cols, tags = entry["columns"], entry["tags"]
    ds = datasets.load_dataset("json", data_files=os.path.join(chat, entry["file_name"]), split="train")
    for r in ds:
        msgs = r[cols["messages"]]
        roles = [m[tags["role_tag"]] for m in msgs]
        want = [tags["user_tag"], tags["assistant_tag"]] * (len(roles) // 2)
        if roles != want or not roles:
            failures.append(f"sharegpt: roles {roles}")
        images = r[cols["images"]] or []
        tokens = sum(m[tags["content_tag"]].count("<image>") for m in msgs)
        if tokens != len(images):
            failures.append(f"sharegpt: {tokens} <image> tokens, {len(images)} images")
        for p in images:
            Image.open(os.path.join(chat, p)).convert("RGB")
    return len(ds)


def main() -> int:
    scenario_dir, code = sys.argv[1], sys.argv[2]
    failures = []
    hf_rows = check_hf(os.path.join(scenario_dir, "hf"), code, failures)
    chat = os.path.join(scenario_dir, "chat")
    llava_rows, pictures = check_llava(chat, code, failures)
    share_rows = check_sharegpt(chat, code, failures)
    for f in failures:
        print("FAIL", f)
    print(f"hf {hf_rows} rows, llava {llava_rows} records ({pictures} pictures), "
          f"sharegpt {share_rows} records, {len(failures)} failures")
    return 1 if failures or not (hf_rows and llava_rows and share_rows) else 0


if __name__ == "__main__":
    sys.exit(main())
