#!/usr/bin/env python3
"""The Python baseline for CLIP image embedding: what people run today. transformers'
CLIPVisionModelWithProjection with CLIPImageProcessor (PIL), pictures read with PIL, batches
of BATCH, torch limited to THREADS threads, fp32 on CPU.

    embed_transformers.py IMAGES_DIR MODEL_DIR BATCH THREADS OUT.npy

Prints one JSON line: images, seconds (end to end: read + preprocess + model), model_seconds,
img_per_s. OUT.npy: the vectors in sorted file-stem order (to compare with mimicit's)."""
import json
import os
import sys
import time

import numpy as np
import torch
from PIL import Image
from transformers import CLIPVisionModelWithProjection
from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil


def main():
    images_dir, model_dir, batch, threads, out = sys.argv[1:6]
    batch, threads = int(batch), int(threads)
    torch.set_num_threads(threads)
    model = CLIPVisionModelWithProjection.from_pretrained(model_dir).eval()
    proc = CLIPImageProcessorPil.from_pretrained(model_dir)
    files = sorted(
        (os.path.splitext(f)[0], os.path.join(images_dir, f))
        for f in os.listdir(images_dir)
        if f.lower().endswith((".jpg", ".jpeg", ".png"))
    )
    vectors, model_s = [], 0.0
    start = time.perf_counter()
    with torch.inference_mode():
        for i in range(0, len(files), batch):
            imgs = [Image.open(p).convert("RGB") for _, p in files[i : i + batch]]
            pv = proc(images=imgs, return_tensors="pt")["pixel_values"]
            t = time.perf_counter()
            vectors.append(model(pixel_values=pv).image_embeds.numpy())
            model_s += time.perf_counter() - t
    total = time.perf_counter() - start
    np.save(out, np.concatenate(vectors).astype(np.float32))
    print(json.dumps({"images": len(files), "seconds": round(total, 3),
                      "model_seconds": round(model_s, 3),
                      "img_per_s": round(len(files) / total, 2)}))


if __name__ == "__main__":
    main()
