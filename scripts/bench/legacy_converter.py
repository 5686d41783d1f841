#!/usr/bin/env python3
"""What the public MIMIC-IT converter does with a video, for benchmarking against it:
OpenCV reads every frame, keeps every int(fps)-th one, cv2.resize to 224x224, PNG-encodes it
with cv2.imencode, then PIL reopens it, Lanczos-resizes to 224x224, converts to RGB and saves a
PNG again.

usage: legacy_converter.py VIDEO OUT_DIR
"""
import io
import os
import sys

import cv2
from PIL import Image


def main() -> int:
    video, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    cap = cv2.VideoCapture(video)
    stride = max(1, int(cap.get(cv2.CAP_PROP_FPS)))
    index = kept = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        if index % stride == 0:
            small = cv2.resize(frame, (224, 224))
            ok, png = cv2.imencode(".png", small)
            img = Image.open(io.BytesIO(png.tobytes()))
            img = img.resize((224, 224), Image.LANCZOS).convert("RGB")
            img.save(os.path.join(out, f"{kept:06}.png"), format="PNG")
            kept += 1
        index += 1
    print(f"{kept} frames from {index}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
