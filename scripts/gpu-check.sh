#!/usr/bin/env bash
# A short check for a machine with an NVIDIA GPU: builds mimicit (release), makes a random
# ViT-B/32 (and, with PRESETS="b32 l14", a ViT-L/14), embeds N stored frames in fp16 on cuda:0
# and in fp32 on the CPU (a subset), and prints img/s on the GPU and the largest difference
# between the two (cosine and absolute). Nothing here runs in CI.
#
# usage: scripts/gpu-check.sh        (env: N=4096 BATCH=256 PRESETS="b32 l14" CPU_N=64)
set -euo pipefail
cd "$(dirname "$0")/.."
eval "$(scripts/setup.sh --env)"
cargo build --release --bins
bin=target/release/mimicit
N="${N:-4096}"; BATCH="${BATCH:-256}"; PRESETS="${PRESETS:-b32 l14}"; CPU_N="${CPU_N:-64}"
"$bin" doctor | python -c 'import json,sys; t=json.load(sys.stdin)["torch"]; print("torch:", t); sys.exit(0 if t["cuda_available"] else 1)' \
  || { echo "libtorch sees no CUDA device" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/imgs" "$work/cpu"
mapfile -t src < <(ls tests/fixtures/coco/images/*.jpg tests/fixtures/scannet/*/color/*.jpg 2>/dev/null)
for ((i = 0; i < N; i++)); do
  cp "${src[i % ${#src[@]}]}" "$work/imgs/$(printf 'f%07d' "$i").jpg"
  ((i < CPU_N)) && cp "${src[i % ${#src[@]}]}" "$work/cpu/$(printf 'f%07d' "$i").jpg"
done
for preset in $PRESETS; do
  python scripts/make-tiny-clip.py "$work/$preset" --preset "$preset" >/dev/null 2>&1
  "$bin" --progress none -q embed "$work/cpu" --model "$work/$preset" --out "$work/$preset-cpu.parquet" --device cpu --npy
  "$bin" --progress none -q embed "$work/imgs" --model "$work/$preset" --out "$work/$preset-warm.parquet" --device cuda:0 --batch "$BATCH" >/dev/null
  t0=$(date +%s.%N)
  "$bin" --progress none -q embed "$work/imgs" --model "$work/$preset" --out "$work/$preset-gpu.parquet" --device cuda:0 --precision fp16 --batch "$BATCH" --npy
  t1=$(date +%s.%N)
  python - "$work/$preset-cpu.npy" "$work/$preset-gpu.npy" "$N" "$t0" "$t1" "$preset" <<'PY'
import sys, numpy as np
cpu, gpu = np.load(sys.argv[1]), np.load(sys.argv[2])[: len(np.load(sys.argv[1]))]
n, t0, t1, preset = int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]), sys.argv[6]
cos = (cpu * gpu).sum(1) / np.linalg.norm(cpu, axis=1) / np.linalg.norm(gpu, axis=1)
print(f"{preset}: {n / (t1 - t0):.0f} img/s end to end on cuda:0 fp16 (JPEG decode + preprocess + model); "
      f"vs CPU fp32: min cosine {cos.min():.6f}, largest |difference| {abs(cpu - gpu).max():.3e}")
PY
done
