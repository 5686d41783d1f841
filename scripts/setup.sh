#!/usr/bin/env bash
# One-time, idempotent set-up of everything mimicit needs to build and test:
#   1. Debian packages: FFmpeg dev libraries (ffmpeg-next), clang (bindgen), pkg-config, ffmpeg,
#      chromium (the report test opens the HTML report in it, headless), slurm-wlm and munge
#      (the Slurm test runs a one-node cluster with scripts/slurm/local-cluster.sh), iproute2
#      (the Ray test brings up loopback in a network namespace of its own).
#   2. A Python venv with torch==2.13.0 (the libtorch that tch 0.26 links against) plus the
#      readers used by compatibility tests (datasets among them) and ray (the Ray test's
#      one-node cluster), kept in a cache folder shared by every clone.
# It prints the environment to use (`eval "$(scripts/setup.sh --env)"`) and is quick when done.
set -euo pipefail

TORCH_VERSION=2.13.0
# HOME can be unset under some schedulers and CI runners: fall back to the account's home.
HOME_DIR="${HOME:-$(getent passwd "$(id -u)" | cut -d: -f6)}"
CACHE_ROOT="${MIMICIT_CACHE:-${XDG_CACHE_HOME:-$HOME_DIR/.cache}/mimicit}"
VENV="${MIMICIT_VENV:-$CACHE_ROOT/venv-torch-$TORCH_VERSION}"
PY_PACKAGES=(pandas pyarrow pillow numpy pyyaml jsonschema webdataset transformers safetensors
  opencv-python-headless datasets ray)
APT_PACKAGES=(pkg-config clang libclang-dev ffmpeg libavcodec-dev libavformat-dev libavutil-dev
  libswscale-dev libswresample-dev libavfilter-dev libavdevice-dev libturbojpeg0-dev chromium
  slurm-wlm munge iproute2)

print_env() {
  cat <<ENV
export VIRTUAL_ENV="$VENV"
export PATH="$VENV/bin:\$PATH"
export LIBTORCH_USE_PYTORCH=1
export LIBTORCH_BYPASS_VERSION_CHECK=0
ENV
}

if [[ "${1:-}" == "--env" ]]; then
  print_env
  exit 0
fi

log() { echo "setup: $*" >&2; }

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  log "installing Debian packages: ${missing[*]}"
  SUDO=""
  [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  $SUDO apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

stamp="$VENV/.mimicit-ready-$TORCH_VERSION"
want="torch==$TORCH_VERSION ${PY_PACKAGES[*]}"
if [[ ! -f "$stamp" ]] || [[ "$(cat "$stamp")" != "$want" ]]; then
  log "preparing the Python venv with torch==$TORCH_VERSION in $VENV (first time: about 2.7 GB download)"
  mkdir -p "$CACHE_ROOT"
  # Serialise concurrent clones setting up the same cache.
  exec 9>"$CACHE_ROOT/.setup.lock"
  flock 9
  if [[ ! -f "$stamp" ]] || [[ "$(cat "$stamp")" != "$want" ]]; then
    [[ -x "$VENV/bin/python" ]] || python3 -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --upgrade pip >&2
    "$VENV/bin/python" -m pip install -q "torch==$TORCH_VERSION" "${PY_PACKAGES[@]}" >&2
    echo "$want" >"$stamp"
  fi
  flock -u 9
fi
log "ready (venv: $VENV)"
