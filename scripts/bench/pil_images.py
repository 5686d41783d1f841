"""The public converter's per-image path, for scripts/bench/frames_more.sh (P2): every .jpg,
.jpeg and .png directly in IN_DIR, in name order, is opened with PIL, resized to 224x224 with
Lanczos, converted to RGB and saved as PNG into OUT_DIR. One thread.

usage: pil_images.py IN_DIR OUT_DIR
"""

import os
import sys

from PIL import Image


def main() -> int:
    src, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    names = sorted(
        n for n in os.listdir(src) if n.lower().endswith((".jpg", ".jpeg", ".png"))
    )
    for i, name in enumerate(names):
        img = Image.open(os.path.join(src, name))
        img = img.resize((224, 224), Image.LANCZOS).convert("RGB")
        img.save(os.path.join(out, f"{i:06}.png"))
    print(len(names))
    return 0


if __name__ == "__main__":
    sys.exit(main())
