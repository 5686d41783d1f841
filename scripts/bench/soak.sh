#!/usr/bin/env bash
# Soak test of resumption: the scale-out flow over the bundled demo (`--partition 0/2`,
# `--partition 1/2`, then `merge`) is started again and again and killed with SIGKILL at a random
# moment each time (K times, default 50), each start resuming what the killed one left (its lock
# included); then it is run to the end and OUT is compared with an uninterrupted run of the same
# flow, file by file (`timings.json` and the report page, which hold wall times, aside).
#
# usage: scripts/bench/soak.sh [--kills K] [--bin PATH_TO_MIMICIT] [--seed S]
set -euo pipefail
cd "$(dirname "$0")/../.."
repo="$PWD"

kills=50
seed=1
bin="${CARGO_TARGET_DIR:-target}/release/mimicit"
while (($#)); do
  case "$1" in
    --kills) kills="$2"; shift 2 ;;
    --bin) bin="$2"; shift 2 ;;
    --seed) seed="$2"; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
[[ -x "$bin" ]] || { echo "no binary at $bin: cargo build --release --bins" >&2; exit 2; }
bin="$(realpath "$bin")"
RANDOM=$seed

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
for d in ref soak; do
  mkdir -p "$work/$d/scenarios"
  cp -r "$repo/demo" "$work/$d/demo"
  cp "$repo/scenarios/demo.toml" "$work/$d/scenarios/demo.toml"
done

# The flow; exit statuses 0 and 3 (rejects) are success.
flow() {
  local dir="$1"
  (
    cd "$dir"
    for step in "run scenarios/demo.toml --out out --partition 0/2" \
                "run scenarios/demo.toml --out out --partition 1/2" \
                "merge scenarios/demo.toml --out out"; do
      # shellcheck disable=SC2086
      "$bin" $step --progress=none -q || [[ $? == 3 ]] || return 1
    done
  )
}

start=$(date +%s.%N)
flow "$work/ref" >/dev/null 2>&1
whole=$(echo "$(date +%s.%N) - $start" | bc)
echo "uninterrupted flow: ${whole}s"

landed=0
for ((i = 1; i <= kills; i++)); do
  # A moment in [0, 1.2 x the flow's time): most kills land inside a run, some after it.
  ms=$(( RANDOM % (1 + $(printf '%.0f' "$(echo "$whole * 1200" | bc)")) ))
  setsid bash -c "$(declare -f flow); bin='$bin'; flow '$work/soak'" >/dev/null 2>&1 &
  pid=$!
  sleep "$(echo "scale=3; $ms / 1000" | bc)"
  if kill -0 "$pid" 2>/dev/null; then
    kill -KILL -- "-$pid" 2>/dev/null || true
    landed=$((landed + 1))
  fi
  wait "$pid" 2>/dev/null || true
done
echo "kills: $kills, landed during the flow: $landed"

flow "$work/soak" >/dev/null 2>&1 || { echo "the final resume failed" >&2; exit 1; }
if diff -r -q -x timings.json -x index.html "$work/ref/out" "$work/soak/out"; then
  echo "result: byte-identical to the uninterrupted flow (timings.json and report/index.html aside)"
else
  echo "result: DIFFERENT" >&2
  exit 1
fi
"$bin" verify "$work/soak/out" >/dev/null
echo "verify: ok"
