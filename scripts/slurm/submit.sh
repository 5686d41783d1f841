#!/usr/bin/env bash
# Submits a split mimicit run to Slurm: a job array of N partitions (array.sbatch) and a merge
# job (merge.sbatch) that starts when every task of the array has succeeded
# (--dependency=afterok; it is cancelled if one fails). Prints "ARRAY_JOB_ID MERGE_JOB_ID".
#
#   scripts/slurm/submit.sh SCENARIO.toml OUT N [mimicit run arguments...]
#   scripts/slurm/submit.sh scenarios/dense_captions.toml /shared/out 16 --set source.root=/data/anet
#
# SCENARIO, OUT and the corpus must be on storage that every node sees under the same path.
# The `run` arguments (--set ...) go to the partitions and, but for --threads, to the merge,
# which must see the same settings. Slurm options go through sbatch's own environment
# variables, e.g. SBATCH_PARTITION=gpu SBATCH_TIMELIMIT=4:00:00 (both jobs), or
# MIMICIT_ARRAY_SBATCH / MIMICIT_MERGE_SBATCH (extra sbatch arguments for one of the two, e.g.
# "--gres=gpu:1 --cpus-per-task=8"). Logs: OUT/partitions/slurm-JOB_TASK.log and
# OUT/partitions/slurm-merge-JOB.log. MIMICIT: the binary (default: `mimicit` on PATH).
set -euo pipefail

if (($# < 3)); then
  sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
  exit 2
fi
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
scenario="$(realpath "$1")"
out="$(realpath -m "$2")"
n="$3"
shift 3
[[ -f $scenario ]] || { echo "submit.sh: $scenario: no such scenario file" >&2; exit 2; }
[[ $n =~ ^[1-9][0-9]*$ ]] || { echo "submit.sh: N must be a whole number >= 1, not $n" >&2; exit 2; }
mimicit="${MIMICIT:-$(command -v mimicit || true)}"
[[ -n $mimicit ]] || { echo "submit.sh: no mimicit on PATH: set MIMICIT to the binary" >&2; exit 2; }
mimicit="$(realpath "$mimicit")"

# The merge gets the same --set values (the settings must match), without --threads.
merge_args=()
args=("$@")
for ((k = 0; k < ${#args[@]}; k++)); do
  case "${args[k]}" in
  --threads) k=$((k + 1)) ;;
  --threads=*) ;;
  *) merge_args+=("${args[k]}") ;;
  esac
done

mkdir -p "$out/partitions"
export SCENARIO="$scenario" OUT="$out" MIMICIT="$mimicit" PARTITIONS="$n"
# Quoted for the job scripts' eval, so values with spaces survive.
MIMICIT_ARGS="" MIMICIT_MERGE_ARGS=""
(($#)) && MIMICIT_ARGS="$(printf '%q ' "$@")"
((${#merge_args[@]})) && MIMICIT_MERGE_ARGS="$(printf '%q ' "${merge_args[@]}")"
export MIMICIT_ARGS MIMICIT_MERGE_ARGS
read -r -a array_opts <<<"${MIMICIT_ARRAY_SBATCH:-}"
read -r -a merge_opts <<<"${MIMICIT_MERGE_SBATCH:-}"
array_job=$(sbatch --parsable --array="0-$((n - 1))" --export=ALL \
  --output="$out/partitions/slurm-%A_%a.log" "${array_opts[@]}" "$here/array.sbatch")
array_job="${array_job%%;*}"
merge_job=$(sbatch --parsable --dependency="afterok:$array_job" --kill-on-invalid-dep=yes \
  --export=ALL --output="$out/partitions/slurm-merge-%j.log" "${merge_opts[@]}" \
  "$here/merge.sbatch")
merge_job="${merge_job%%;*}"
echo "submit.sh: partitions: job array $array_job (0-$((n - 1))); merge: job $merge_job after it" >&2
echo "$array_job $merge_job"
