#!/usr/bin/env bash
# More `mimicit frames` measurements (CPU-seconds = user + sys, peak RSS, wall), as markdown:
#   P2  still images: N 640x480 JPEGs (testsrc2, -q:v 3) resized to 224x224 PNG, one thread:
#       (a) the public converter's PIL path per image (scripts/bench/pil_images.py: open,
#           resize((224, 224), LANCZOS), convert("RGB"), save PNG) against
#       (b) mimicit --threads 1 frames DIR --sequence-fps 1 --fps 1 (every picture);
#       images per CPU-second of each and their ratio (goal: >= 5x), for the whole processes and
#       per image with each one's start-up (an empty run) taken off.
#   P3  peak RSS of mimicit --threads 2 frames --fps 1 over a folder of K and of 10K generated
#       videos (10 s, 640x360 h264, each a different hue of testsrc2) (goal: flat, < 1 GiB).
#   P5  the 10K-video folder with --threads 1 and --threads 2, each run twice (interleaved, the
#       machine may be shared): wall-clock ratio (goal: >= 1.8x on 2 cores).
#
# usage: scripts/bench/frames_more.sh [--bin PATH_TO_MIMICIT] [--images N] [--videos K]
set -euo pipefail
cd "$(dirname "$0")/../.."

bin="${CARGO_TARGET_DIR:-target}/release/mimicit"
n_images=300
k_videos=4
while (($#)); do
  case "$1" in
    --bin) bin="$2"; shift 2 ;;
    --images) n_images="$2"; shift 2 ;;
    --videos) k_videos="$2"; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
[[ -x "$bin" ]] || { echo "no release binary at $bin: cargo build --release --bin mimicit" >&2; exit 2; }
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

# Start-up alone: the interpreter importing PIL; mimicit on an empty folder (the binary links
# libtorch, whose libraries load and initialise at every start).
mkdir -p "$work/empty"
read -r _ cpu_pil0 rss_pil0 < <(measure "$python" -c "from PIL import Image")
read -r _ cpu_mim0 rss_mim0 < <(measure "$bin" --threads 1 frames "$work/empty" --out "$work/out")
read -r _ cpu_pil rss_pil < <(measure "$python" scripts/bench/pil_images.py "$images" "$work/out")
read -r _ cpu_mim rss_mim < <(measure "$bin" --threads 1 frames "$images" --out "$work/out" \
  --sequence-fps 1 --fps 1 --width 224 --height 224)
got=$(frame_count)
[[ "$got" -eq "$n_images" ]] || { echo "mimicit wrote $got frames, not $n_images" >&2; exit 1; }

rate() { echo "$n_images / $1" | bc -l; }
echo "### P2 still images: $n_images 640x480 JPEGs (testsrc2, -q:v 3) to 224x224 PNG, one thread"
echo
echo "| path | images | CPU-s | images / CPU-s | peak RSS MiB |"
echo "|---|---|---|---|---|"
printf "| (a) PIL: open, resize LANCZOS, convert RGB, save PNG | %s | %.2f | %.1f | %s |\n" \
  "$n_images" "$cpu_pil" "$(rate "$cpu_pil")" "$rss_pil"
printf "| (b) mimicit --threads 1 frames --sequence-fps 1 --fps 1 | %s | %.2f | %.1f | %s |\n" \
  "$got" "$cpu_mim" "$(rate "$cpu_mim")" "$rss_mim"
printf "| (a0) start-up only: python3 -c 'from PIL import Image' | 0 | %.2f | | %s |\n" \
  "$cpu_pil0" "$rss_pil0"
printf "| (b0) start-up only: mimicit frames on an empty folder | 0 | %.2f | | %s |\n" \
  "$cpu_mim0" "$rss_mim0"
echo
printf "(b) / (a), whole processes: **%.2fx** images per CPU-second (goal >= 5x)\n\n" \
  "$(echo "$cpu_pil / $cpu_mim" | bc -l)"
printf "(b - b0) / (a - a0), per image without start-up: **%.2fx** (%.2f ms against %.2f ms)\n\n" \
  "$(echo "($cpu_pil - $cpu_pil0) / ($cpu_mim - $cpu_mim0)" | bc -l)" \
  "$(echo "1000 * ($cpu_mim - $cpu_mim0) / $n_images" | bc -l)" \
  "$(echo "1000 * ($cpu_pil - $cpu_pil0) / $n_images" | bc -l)"

# ---- P3 and P5: folders of videos -------------------------------------------------------------
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
