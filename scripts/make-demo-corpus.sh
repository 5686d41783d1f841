#!/usr/bin/env bash
# Regenerates the committed demo corpus in demo/: short clips with hard cuts, made from FFmpeg's
# synthetic sources, in three containers/codecs. The clips are committed (about 150 KB in all) so
# that the demo and the tests are byte-for-byte the same on every machine; this script documents
# how they were made and rebuilds them when the demo needs to change.
set -euo pipefail
cd "$(dirname "$0")/../demo"
mkdir -p videos

# shot NAME SECONDS: one lavfi source per shot, 160x120, 25 fps.
clip() {
  local out=$1; shift
  local inputs=() filters="" n=0
  for shot in "$@"; do
    inputs+=(-f lavfi -t "${shot##*@}" -i "${shot%@*}")
    filters+="[$n:v]scale=160:120,setsar=1,fps=25,format=yuv420p[v$n];"
    n=$((n + 1))
  done
  local concat=""
  for ((i = 0; i < n; i++)); do concat+="[v$i]"; done
  filters+="${concat}concat=n=$n:v=1:a=0[out]"
  ffmpeg -nostdin -loglevel error -y "${inputs[@]}" -filter_complex "$filters" -map "[out]" \
    -threads 1 -g 25 -bf 2 "${CODEC[@]}" -map_metadata -1 -fflags +bitexact -flags:v +bitexact "$out"
}

CODEC=(-c:v libx264 -preset veryfast -crf 30 -x264-params threads=1)
clip videos/v_demo_kitchen.mp4 "testsrc2=size=160x120:rate=25@2" "smptebars=size=160x120:rate=25@2" "mandelbrot=size=160x120:rate=25@2"
clip videos/v_demo_street.mp4 "color=c=0x3060a0:size=160x120:rate=25@1.5" "testsrc=size=160x120:rate=25@2" "rgbtestsrc=size=160x120:rate=25@1.5"
CODEC=(-c:v libvpx-vp9 -b:v 40k -deadline good -cpu-used 4 -row-mt 0 -threads 1)
clip videos/v_demo_garden.webm "life=size=160x120:rate=25:mold=10:seed=7@2" "cellauto=size=160x120:rate=25:rule=110:seed=3@2"
CODEC=(-c:v mpeg4 -q:v 5)
clip videos/v_demo_studio.mkv "smptehdbars=size=160x120:rate=25@2" "testsrc2=size=160x120:rate=25@2"
ls -l videos
