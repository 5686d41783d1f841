#!/usr/bin/env bash
# CPU-seconds (user + sys) and peak RSS of extracting frames from one long video, one thread:
#   (i)   ffmpeg -threads 1 -vf fps=1,scale=224:224 to PNG
#   (ii)  the public converter's method (scripts/bench/legacy_converter.py, OpenCV + PIL)
#   (iii) mimicit frames --fps 1 --threads 1 --width 224 --height 224
#   (iv)  mimicit frames --keyframes-only --threads 1
# Prints a markdown table. Without --input it generates a 120 s 1280x720 h264 clip (testsrc2,
# 29.97 fps, keyframe every 250 frames).
#
# usage: scripts/bench/keyframes.sh [--input VIDEO] [--bin PATH_TO_MIMICIT]
set -euo pipefail
cd "$(dirname "$0")/../.."

input=""
bin="${CARGO_TARGET_DIR:-target}/release/mimicit"
while (($#)); do
  case "$1" in
    --input) input="$2"; shift 2 ;;
    --bin) bin="$2"; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
[[ -x "$bin" ]] || { echo "no release binary at $bin: cargo build --release --bins" >&2; exit 2; }
python="${VIRTUAL_ENV:+$VIRTUAL_ENV/bin/}python3"
"$python" -c "import cv2, PIL" 2>/dev/null || {
  echo "$python lacks cv2 or PIL (scripts/setup.sh installs them)" >&2; exit 2; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
if [[ -z "$input" ]]; then
  input="$work/bench.mp4"
  ffmpeg -hide_banner -loglevel error -f lavfi -i "testsrc2=s=1280x720:r=30000/1001:d=120" \
    -c:v libx264 -g 250 -pix_fmt yuv420p "$input"
fi

# Runs a command under /usr/bin/time; prints "cpu_s rss_mib".
measure() {
  local out="$work/out"
  rm -rf "$out" && mkdir -p "$out"
  /usr/bin/time -f "%e %U %S %M" -o "$work/time" "$@" >/dev/null 2>"$work/log" \
    || { cat "$work/log" >&2; exit 1; }
  read -r _wall user sys rss <"$work/time"
  echo "$(echo "$user + $sys" | bc) $((rss / 1024))"
}

declare -A cpu rss
names=(ffmpeg legacy fps1 keyframes)
read -r cpu[ffmpeg] rss[ffmpeg] < <(measure ffmpeg -hide_banner -threads 1 -i "$input" \
  -vf fps=1,scale=224:224 "$work/out/out%05d.png")
read -r cpu[legacy] rss[legacy] < <(measure "$python" scripts/bench/legacy_converter.py \
  "$input" "$work/out")
read -r cpu[fps1] rss[fps1] < <(measure "$bin" --threads 1 frames "$input" --out "$work/out" \
  --fps 1 --width 224 --height 224)
read -r cpu[keyframes] rss[keyframes] < <(measure "$bin" --threads 1 frames "$input" \
  --out "$work/out" --keyframes-only)

declare -A label=(
  [ffmpeg]="(i) ffmpeg -threads 1 -vf fps=1,scale=224:224"
  [legacy]="(ii) public converter method (OpenCV + PIL)"
  [fps1]="(iii) mimicit frames --fps 1 --threads 1 224x224"
  [keyframes]="(iv) mimicit frames --keyframes-only --threads 1"
)
echo "input: $input ($(ffprobe -v error -select_streams v:0 -show_entries \
  stream=codec_name,width,height,avg_frame_rate -of csv=p=0 "$input"))"
echo
echo "| command | CPU-s | peak RSS MiB | speed-up vs (i) | speed-up vs (ii) |"
echo "|---|---|---|---|---|"
for n in "${names[@]}"; do
  printf "| %s | %.2f | %s | %.2fx | %.2fx |\n" "${label[$n]}" "${cpu[$n]}" "${rss[$n]}" \
    "$(echo "${cpu[ffmpeg]} / ${cpu[$n]}" | bc -l)" "$(echo "${cpu[legacy]} / ${cpu[$n]}" | bc -l)"
done
