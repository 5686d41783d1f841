#!/usr/bin/env bash
# P4: CLIP image embedding throughput on CPU, mimicit against transformers, same weights (a
# random model with the shapes of OpenAI's ViT-B/32 unless PRESET says otherwise), same threads,
# same batch, same pictures (the COCO/ScanNet fixture JPEGs copied to N files). Each side is run
# twice, alternating, and the better run is kept. Prints a markdown table and the largest
# difference between the two sides' vectors.
#
# PRECISION=bf16 runs mimicit in bf16 (the opt-in fast path on CPUs with AVX512-BF16 or AMX)
# against transformers in fp32: the difference printed is then bf16's from fp32.
#
# usage: scripts/bench/embed.sh [--bin PATH_TO_MIMICIT]   (env: N=256 BATCH=32 THREADS=nproc PRESET=b32 PRECISION=fp32)
set -euo pipefail
cd "$(dirname "$0")/../.."
bin="${CARGO_TARGET_DIR:-target}/release/mimicit"
[[ "${1:-}" == "--bin" ]] && bin="$2"
[[ -x "$bin" ]] || { echo "no release binary at $bin: cargo build --release --bins" >&2; exit 2; }
N="${N:-256}"; BATCH="${BATCH:-32}"; THREADS="${THREADS:-$(nproc)}"; PRESET="${PRESET:-b32}"; PRECISION="${PRECISION:-fp32}"
python="${VIRTUAL_ENV:+$VIRTUAL_ENV/bin/}python3"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$python" scripts/make-tiny-clip.py "$work/model" --preset "$PRESET" >/dev/null 2>&1
mkdir -p "$work/imgs"
mapfile -t src < <(ls tests/fixtures/coco/images/*.jpg tests/fixtures/scannet/*/color/*.jpg 2>/dev/null)
((${#src[@]})) || { echo "no fixture pictures under tests/fixtures" >&2; exit 2; }
for ((i = 0; i < N; i++)); do
  cp "${src[i % ${#src[@]}]}" "$work/imgs/$(printf 'img%06d' "$i").jpg"
done

run_mimicit() {
  local t0 t1
  t0=$(date +%s.%N)
  "$bin" --threads "$THREADS" --progress none -q embed "$work/imgs" --model "$work/model" \
    --out "$work/m.parquet" --batch "$BATCH" --device cpu --precision "$PRECISION" --npy
  t1=$(date +%s.%N)
  echo "$t0 $t1" | awk -v n="$N" '{printf "%.3f %.2f\n", $2-$1, n/($2-$1)}'
}
run_python() {
  "$python" scripts/bench/embed_transformers.py "$work/imgs" "$work/model" "$BATCH" "$THREADS" \
    "$work/p.npy" | "$python" -c 'import json,sys; d=json.load(sys.stdin); print(d["seconds"], d["img_per_s"], d["model_seconds"])'
}
best_m=0; best_p=0; model_p=""
for _ in 1 2; do
  read -r _s m < <(run_mimicit); awk -v a="$m" -v b="$best_m" 'BEGIN{exit !(a>b)}' && best_m=$m
  read -r _s p mp < <(run_python); awk -v a="$p" -v b="$best_p" 'BEGIN{exit !(a>b)}' && { best_p=$p; model_p=$mp; }
done
diff=$("$python" -c "
import numpy as np, sys
a = np.load(sys.argv[1]).astype(np.float64); b = np.load(sys.argv[2]).astype(np.float64)
cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
print(f'{abs(a - b).max():.2e} (lowest cosine between a picture\'s two vectors: {cos.min():.6f})')" "$work/m.npy" "$work/p.npy")
echo "| side ($PRESET, $N pictures, batch $BATCH, $THREADS threads, CPU; transformers fp32) | img/s |"
echo "|---|---|"
echo "| transformers (PIL + CLIPImageProcessor + CLIPVisionModelWithProjection) | $best_p (model alone: $(awk -v n="$N" -v s="$model_p" 'BEGIN{printf "%.2f", n/s}')) |"
echo "| mimicit embed ($PRECISION) | $best_m |"
echo "| ratio mimicit / transformers | $(awk -v a="$best_m" -v b="$best_p" 'BEGIN{printf "%.2f", a/b}') |"
echo "largest difference between the two sides' vectors: $diff"
