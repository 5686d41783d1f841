#!/usr/bin/env bash
# More `mimicit frames` measurements (CPU-seconds = user + sys, peak RSS, wall), as markdown:
#   P2  still images: N 640x480 JPEGs (testsrc2, -q:v 3) resized to 224x224 PNG, one thread:
#       (a) the public converter's PIL path per image (scripts/bench/pil_images.py: open,
#           resize((224, 224), LANCZOS), convert("RGB"), save PNG) against
#       (b) mimicit --threads 1 frames DIR --sequence-fps 1 --fps 1 (every picture), and (b) with
#       its speed settings: (c) --png-compression fast, (d) --reducing-gap 1, (e) both;
#       images per CPU-second of each and their ratio (goal: >= 5x), for the whole processes and
#       per image with each one's start-up (an empty run) taken off; PNG bytes per frame and the
#       PSNR of (c)-(e)'s frames against (b)'s.
#   P3  peak RSS of mimicit --threads 2 frames --fps 1 over a folder of K and of 10K generated
#       videos (10 s, 640x360 h264, each a different hue of testsrc2) (goal: flat, < 1 GiB).
#   P5  the 10K-video folder with --threads 1 and --threads 2, each run twice (interleaved, the
#       machine may be shared): wall-clock ratio (goal: >= 1.8x on 2 cores).
#
# usage: scripts/bench/frames_more.sh [--bin PATH_TO_MIMICIT] [--images N] [--videos K]
#                                     [--repeat R] [--only-p2]
set -euo pipefail
cd "$(dirname "$0")/../.."

bin="${CARGO_TARGET_DIR:-target}/release/mimicit"
n_images=300
k_videos=4
repeat=3
only_p2=0
while (($#)); do
  case "$1" in
    --bin) bin="$2"; shift 2 ;;
    --images) n_images="$2"; shift 2 ;;
    --videos) k_videos="$2"; shift 2 ;;
    --repeat) repeat="$2"; shift 2 ;;
    --only-p2) only_p2=1; shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
[[ -x "$bin" ]] || { echo "no release binary at $bin: cargo build --release --bins" >&2; exit 2; }
python="${VIRTUAL_ENV:+$VIRTUAL_ENV/bin/}python3"
"$python" -c "import PIL" 2>/dev/null || {
  echo "$python lacks PIL (scripts/setup.sh installs it)" >&2; exit 2; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# Runs a command under /usr/bin/time with $work/out emptied first; prints
# "wall_s cpu_s rss_mib". A failing command stops the script with its log.
measure() {
  local out="$work/out"
  rm -rf "$out" && mkdir -p "$out"
  /usr/bin/time -f "%e %U %S %M" -o "$work/time" "$@" >/dev/null 2>"$work/log" \
    || { cat "$work/log" >&2; exit 1; }
  read -r wall user sys rss <"$work/time"
  echo "$wall $(echo "$user + $sys" | bc) $((rss / 1024))"
}

# Frames listed in $work/out/frames.jsonl.
frame_count() { wc -l <"$work/out/frames.jsonl" | tr -d ' '; }

# ---- P2: still images -------------------------------------------------------------------------
images="$work/images"
mkdir -p "$images"
ffmpeg -hide_banner -loglevel error -f lavfi -i "testsrc2=s=640x480:r=1:d=$n_images" \
  -q:v 3 "$images/img%05d.jpg"
made=$(find "$images" -name '*.jpg' | wc -l)
[[ "$made" -eq "$n_images" ]] || { echo "ffmpeg made $made pictures, not $n_images" >&2; exit 1; }

# Each path runs --repeat times, the paths interleaved (the machine may be shared); the least
# CPU-seconds of each path is kept. Outputs of the last round stay in $work/p2_NAME for sizes and
# pixel comparisons.
mkdir -p "$work/empty"
paths=(pil0 mim0 pil default fast gap1 both)
declare -A cpu rss
for name in "${paths[@]}"; do cpu[$name]=999999; done
run_path() {
  local name="$1"
  case "$name" in
    pil0) measure "$python" -c "from PIL import Image" ;;
    mim0) measure "$bin" --threads 1 frames "$work/empty" --out "$work/out" ;;
    pil) measure "$python" scripts/bench/pil_images.py "$images" "$work/out" ;;
    default) measure "$bin" --threads 1 frames "$images" --out "$work/out" \
      --sequence-fps 1 --fps 1 --width 224 --height 224 ;;
    fast) measure "$bin" --threads 1 frames "$images" --out "$work/out" \
      --sequence-fps 1 --fps 1 --width 224 --height 224 --png-compression fast ;;
    gap1) measure "$bin" --threads 1 frames "$images" --out "$work/out" \
      --sequence-fps 1 --fps 1 --width 224 --height 224 --reducing-gap 1 ;;
    both) measure "$bin" --threads 1 frames "$images" --out "$work/out" \
      --sequence-fps 1 --fps 1 --width 224 --height 224 --png-compression fast --reducing-gap 1 ;;
  esac
}
for ((round = 0; round < repeat; round++)); do
  for name in "${paths[@]}"; do
    read -r _ c r < <(run_path "$name")
    if (($(echo "$c < ${cpu[$name]}" | bc -l))); then cpu[$name]=$c; rss[$name]=$r; fi
    case "$name" in
      pil0 | mim0) ;;
      pil) rm -rf "$work/p2_pil" && mv "$work/out" "$work/p2_pil" ;;
      *)
        got=$(frame_count)
        [[ "$got" -eq "$n_images" ]] || { echo "mimicit wrote $got frames, not $n_images" >&2; exit 1; }
        rm -rf "$work/p2_$name" && mv "$work/out" "$work/p2_$name" ;;
    esac
  done
done

# Mean PNG bytes per frame, and mean PSNR (dB) of a path's frames against the default path's.
png_bytes() { find "$1" -name '*.png' -printf '%s\n' | awk '{s += $1; n++} END {printf "%.0f", s / n}'; }
psnr() {
  "$python" - "$work/p2_default" "$1" <<'PY'
import glob, math, os, sys
from PIL import Image
try:
    import numpy as np
except ImportError:
    np = None
a_dir, b_dir = sys.argv[1], sys.argv[2]
total = []
for a in sorted(glob.glob(os.path.join(a_dir, "**", "*.png"), recursive=True)):
    b = os.path.join(b_dir, os.path.relpath(a, a_dir))
    x, y = Image.open(a).convert("RGB").tobytes(), Image.open(b).convert("RGB").tobytes()
    if np is not None:
        d = np.frombuffer(x, np.uint8).astype(np.float64) - np.frombuffer(y, np.uint8)
        total.append(float(np.mean(d * d)))
    else:
        total.append(sum((p - q) ** 2 for p, q in zip(x, y)) / len(x))
mse = sum(total) / len(total)
print("identical" if mse == 0 else f"{10 * math.log10(255 ** 2 / mse):.1f} dB")
PY
}

rate() { echo "$n_images / $1" | bc -l; }
label() {
  case "$1" in
    pil) echo "(a) PIL: open, resize LANCZOS, convert RGB, save PNG" ;;
    default) echo "(b) mimicit --threads 1 frames --sequence-fps 1 --fps 1" ;;
    fast) echo "(c) (b) --png-compression fast" ;;
    gap1) echo "(d) (b) --reducing-gap 1" ;;
    both) echo "(e) (b) --png-compression fast --reducing-gap 1" ;;
  esac
}
echo "### P2 still images: $n_images 640x480 JPEGs (testsrc2, -q:v 3) to 224x224 PNG, one thread"
echo
echo "Least CPU-s of $repeat interleaved runs per path."
echo
echo "| path | CPU-s | images / CPU-s | vs (a), whole process | vs (a), per image without start-up | PNG bytes / frame | pixels vs (b) | peak RSS MiB |"
echo "|---|---|---|---|---|---|---|---|"
per_image() { echo "(${cpu[pil]} - ${cpu[pil0]}) / ($1 - $2)" | bc -l; }
for name in pil default fast gap1 both; do
  if [[ "$name" == pil ]]; then
    whole="1.00x"; net="1.00x"; pixels="(PIL's Lanczos)"
  else
    whole=$(printf "%.2fx" "$(echo "${cpu[pil]} / ${cpu[$name]}" | bc -l)")
    net=$(printf "%.2fx" "$(per_image "${cpu[$name]}" "${cpu[mim0]}")")
    pixels=$(if [[ "$name" == default ]]; then echo "-"; else psnr "$work/p2_$name"; fi)
  fi
  printf "| %s | %.2f | %.1f | %s | %s | %s | %s | %s |\n" "$(label "$name")" "${cpu[$name]}" \
    "$(rate "${cpu[$name]}")" "$whole" "$net" "$(png_bytes "$work/p2_$name")" "$pixels" \
    "${rss[$name]}"
done
printf "| (a0) start-up only: python3 -c 'from PIL import Image' | %.2f | | | | | | %s |\n" \
  "${cpu[pil0]}" "${rss[pil0]}"
printf "| (b0) start-up only: mimicit frames on an empty folder | %.2f | | | | | | %s |\n" \
  "${cpu[mim0]}" "${rss[mim0]}"
echo
echo "Goal: >= 5x images per CPU-second against (a)."
echo

# ---- P3 and P5: folders of videos -------------------------------------------------------------
((only_p2)) && exit 0
# Video i: testsrc2 turned by a hue of its own, so that no two videos are alike.
make_videos() {
  local dir="$1" count="$2"
  mkdir -p "$dir"
  for ((i = 0; i < count; i++)); do
    ffmpeg -hide_banner -loglevel error -f lavfi -i "testsrc2=s=640x360:r=30:d=10" \
      -vf "hue=h=$((i * 360 / count))" -c:v libx264 -preset veryfast -pix_fmt yuv420p \
      "$dir/clip$(printf %03d "$i").mp4"
  done
}
k10=$((k_videos * 10))
make_videos "$work/videos_k" "$k_videos"
make_videos "$work/videos_10k" "$k10"

echo "### P3 peak RSS: --threads 2 frames --fps 1 over 10 s 640x360 h264 videos"
echo
echo "| videos | frames | wall s | CPU-s | peak RSS MiB |"
echo "|---|---|---|---|---|"
for dir in videos_k videos_10k; do
  read -r wall cpu rss < <(measure "$bin" --threads 2 frames "$work/$dir" --out "$work/out" \
    --fps 1)
  count=$(find "$work/$dir" -name '*.mp4' | wc -l)
  printf "| %s | %s | %.2f | %.2f | %s |\n" "$count" "$(frame_count)" "$wall" "$cpu" "$rss"
done
echo

echo "### P5 threads: the $k10-video folder, --fps 1, --threads 1 against --threads 2"
echo
echo "| run | --threads 1 wall s (CPU-s) | --threads 2 wall s (CPU-s) | speed-up |"
echo "|---|---|---|---|"
for run in 1 2; do
  read -r w1 c1 _ < <(measure "$bin" --threads 1 frames "$work/videos_10k" --out "$work/out" \
    --fps 1)
  read -r w2 c2 _ < <(measure "$bin" --threads 2 frames "$work/videos_10k" --out "$work/out" \
    --fps 1)
  printf "| %s | %.2f (%.2f) | %.2f (%.2f) | %.2fx |\n" "$run" "$w1" "$c1" "$w2" "$c2" \
    "$(echo "$w1 / $w2" | bc -l)"
done
echo
echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at the end"
