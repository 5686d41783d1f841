#!/usr/bin/env bash
# One long video on every core: wall time and CPU-seconds (user + sys) of
#   mimicit frames --fps 1 --width 224 --height 224 with --threads 1 and --threads N
# against the ffmpeg command line with its default threads (-vf fps=1,scale=224:224 to PNG),
# on two generated inputs: 30 minutes of 320x240 25 fps h264 (45,000 frames, keyframe every
# 250) and 122 s of 1920x1080 29.97 fps h264 with B-frames. Each command runs twice in turn in
# the same invocation; the table gives both runs and the ratios of their medians.
#
# usage: scripts/bench/long_video.sh [--bin PATH_TO_MIMICIT] [--threads N] [--keep DIR]
set -euo pipefail
cd "$(dirname "$0")/../.."

bin="${CARGO_TARGET_DIR:-target}/release/mimicit"
threads="$(nproc)"
keep=""
while (($#)); do
  case "$1" in
    --bin) bin="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --keep) keep="$2"; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
[[ -x "$bin" ]] || { echo "no release binary at $bin: make release" >&2; exit 2; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
inputs="${keep:-$work}"
mkdir -p "$inputs"
low="$inputs/long_320x240_30min.mp4"
hd="$inputs/long_1080p_122s.mp4"
[[ -s "$low" ]] || ffmpeg -hide_banner -loglevel error -f lavfi \
  -i "testsrc2=s=320x240:r=25:d=1800" -c:v libx264 -preset veryfast -g 250 -pix_fmt yuv420p "$low"
[[ -s "$hd" ]] || ffmpeg -hide_banner -loglevel error -f lavfi \
  -i "testsrc2=s=1920x1080:r=30000/1001:d=122" -c:v libx264 -preset veryfast -g 250 \
  -pix_fmt yuv420p "$hd"

# Runs a command under /usr/bin/time; prints "wall_s cpu_s".
measure() {
  local out="$work/out"
  rm -rf "$out" && mkdir -p "$out"
  /usr/bin/time -f "%e %U %S" -o "$work/time" "$@" >/dev/null 2>"$work/log" \
    || { cat "$work/log" >&2; exit 1; }
  read -r wall user sys <"$work/time"
  echo "$wall $(echo "$user + $sys" | bc)"
}

median2() { echo "($1 + $2) / 2" | bc -l; }

echo "threads: 1 and $threads; $(nproc) cores"
echo
for input in "$low" "$hd"; do
  declare -A wall=() cpu=()
  for run in 1 2; do
    read -r wall[t1,$run] cpu[t1,$run] < <(measure "$bin" --threads 1 frames "$input" \
      --out "$work/out" --fps 1 --width 224 --height 224)
    read -r wall[tn,$run] cpu[tn,$run] < <(measure "$bin" --threads "$threads" frames "$input" \
      --out "$work/out" --fps 1 --width 224 --height 224)
    read -r wall[ff,$run] cpu[ff,$run] < <(measure ffmpeg -hide_banner -i "$input" \
      -vf fps=1,scale=224:224 "$work/out/out%05d.png")
  done
  echo "$(basename "$input")"
  echo
  echo "| command | wall s (runs) | CPU-s (runs) | wall vs --threads 1 | wall vs ffmpeg | CPU vs --threads 1 |"
  echo "|---|---|---|---|---|---|"
  w1=$(median2 "${wall[t1,1]}" "${wall[t1,2]}"); c1=$(median2 "${cpu[t1,1]}" "${cpu[t1,2]}")
  wf=$(median2 "${wall[ff,1]}" "${wall[ff,2]}")
  for k in t1 tn ff; do
    case $k in
      t1) name="mimicit --threads 1" ;;
      tn) name="mimicit --threads $threads" ;;
      ff) name="ffmpeg (default threads)" ;;
    esac
    w=$(median2 "${wall[$k,1]}" "${wall[$k,2]}"); c=$(median2 "${cpu[$k,1]}" "${cpu[$k,2]}")
    printf '| %s | %s, %s | %s, %s | %.2fx | %.2fx | %.2fx |\n' "$name" \
      "${wall[$k,1]}" "${wall[$k,2]}" "${cpu[$k,1]}" "${cpu[$k,2]}" \
      "$(echo "$w / $w1" | bc -l)" "$(echo "$w / $wf" | bc -l)" "$(echo "$c / $c1" | bc -l)"
  done
  echo
done
