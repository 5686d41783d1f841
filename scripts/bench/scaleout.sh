#!/usr/bin/env bash
# What splitting a run costs: the same generated corpus run (a) whole, in one process, and
# (b) as N partitions one after the other, then `mimicit merge`. Prints a markdown table of
# wall seconds and CPU-seconds (user + sys) per command, the overhead of (b) over (a), and
# checks that both outputs are the same bytes (but timings and the report page).
#
# The corpus: K distinct synthetic clips (FFmpeg lavfi sources, 320x240, 25 fps, 12 s, three
# shots each), ActivityNet-Captions-style annotations and Syphus answers for every clip,
# features from the demo's tiny CLIP model with pairs and knn in-context examples.
#
# usage: scripts/bench/scaleout.sh [--clips K] [--partitions N] [--bin PATH_TO_MIMICIT]
set -euo pipefail
cd "$(dirname "$0")/../.."
repo="$PWD"

clips=24
parts=4
bin="${CARGO_TARGET_DIR:-target}/release/mimicit"
while (($#)); do
  case "$1" in
    --clips) clips="$2"; shift 2 ;;
    --partitions) parts="$2"; shift 2 ;;
    --bin) bin="$2"; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
[[ -x "$bin" ]] || { echo "no binary at $bin: cargo build --release --bins" >&2; exit 2; }
bin="$(realpath "$bin")"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/corpus/videos" "$work/corpus/annotations" "$work/corpus/answers"

sources=(testsrc2 smptebars mandelbrot rgbtestsrc "life=mold=10:seed=SEED" "cellauto=rule=110:seed=SEED" smptehdbars testsrc)
annotations="{"
answers="["
for ((k = 0; k < clips; k++)); do
  id=$(printf "v_bench_%03d" "$k")
  inputs=()
  filters=""
  for s in 0 1 2; do
    src="${sources[$(((k + s * 3) % ${#sources[@]}))]}"
    src="${src//SEED/$((k * 7 + s))}"
    [[ $src == *=* ]] && src="$src:" || src="$src="
    inputs+=(-f lavfi -t 4 -i "${src}size=320x240:rate=25")
    filters+="[$s:v]hue=h=$((k * 37 % 360)),scale=320:240,setsar=1,fps=25,format=yuv420p[v$s];"
  done
  ffmpeg -nostdin -loglevel error -y "${inputs[@]}" \
    -filter_complex "${filters}[v0][v1][v2]concat=n=3:v=1:a=0[out]" -map "[out]" \
    -c:v libx264 -preset veryfast -crf 28 -g 50 "$work/corpus/videos/$id.mp4"
  ((k > 0)) && annotations+="," && answers+=","
  annotations+="\"$id\": {\"duration\": 12.0, \"timestamps\": [[0, 4], [4, 8], [8, 12]],
    \"sentences\": [\"Shot one of clip $k.\", \"Shot two of clip $k.\", \"Shot three of clip $k.\"]}"
  answers+="{\"id\": \"$id\", \"results\": \"Question: What opens clip $k?\\nAnswer: Shot one.\\n\\nQuestion: How many shots?\\nAnswer: Three.\"}"
done
echo "$annotations}" >"$work/corpus/annotations/train.json"
echo "$answers]" >"$work/corpus/answers/valid_output.json"
cp -r "$repo/demo/model" "$work/corpus/model"
cat >"$work/bench.toml" <<TOML
scenario = "DC"
name = "bench"
[source]
root = "corpus"
annotations = "annotations/train.json"
media = "videos"
[keyframes]
policy = "fps"
fps = 1.0
[dedup]
near = true
[features]
model = "corpus/model"
normalize = true
pairs = 4
[pack]
answers = ["corpus/answers/valid_output.json"]
rel_ins = "knn:2"
max_part_bytes = 2000000
TOML

# Runs a command under /usr/bin/time from $work; prints "wall_s cpu_s".
measure() {
  (cd "$work" && /usr/bin/time -f "%e %U %S" -o "$work/time" "$@" >/dev/null 2>"$work/log") ||
    { cat "$work/log" >&2; exit 1; }
  read -r wall user sys <"$work/time"
  echo "$wall $(echo "$user + $sys" | bc)"
}

read -r single_wall single_cpu < <(measure "$bin" run bench.toml --out single --progress none)
part_wall=0
part_cpu=0
rows=""
for ((i = 0; i < parts; i++)); do
  read -r w c < <(measure "$bin" run bench.toml --out split --partition "$i/$parts" --progress none)
  rows+="| \`run --partition $i/$parts\` | $w | $c |"$'\n'
  part_wall=$(echo "$part_wall + $w" | bc)
  part_cpu=$(echo "$part_cpu + $c" | bc)
done
read -r merge_wall merge_cpu < <(measure "$bin" merge bench.toml --out split --progress none)

same=yes
while read -r f; do
  case "$f" in */timings.json | ./report/index.html) continue ;; esac
  cmp -s "$work/single/$f" "$work/split/$f" || { same="no ($f differs)"; break; }
done < <(cd "$work/single" && find . -type f | sort)

frames=$(python3 -c "import json,sys; m=json.load(open(sys.argv[1])); print(m['scenarios']['DC']['stages']['keyframes']['outputs'][0].get('rows', '?'))" "$work/single/manifest.json" 2>/dev/null || echo "?")
total_wall=$(echo "$part_wall + $merge_wall" | bc)
total_cpu=$(echo "$part_cpu + $merge_cpu" | bc)
cat <<TABLE
Corpus: $clips generated clips (12 s, 320x240), $frames frames stored; $parts partitions.

| command | wall s | CPU s |
|---|---|---|
| (a) \`run\` (one process) | $single_wall | $single_cpu |
$rows| \`merge\` | $merge_wall | $merge_cpu |
| (b) partitions + merge | $total_wall | $total_cpu |
| (b) - (a) | $(echo "$total_wall - $single_wall" | bc) | $(echo "$total_cpu - $single_cpu" | bc) |

Outputs of (a) and (b) byte-identical (but timings and report page): $same
TABLE
