#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, for trying the job-array scripts and for the test
# suite: slurmctld and slurmd as plain background daemons (no systemd needed), munge for their
# authentication, everything in a state folder of its own.
#
#   scripts/slurm/local-cluster.sh start   # prints `export SLURM_CONF=...`; eval it
#   scripts/slurm/local-cluster.sh stop    # stops what `start` started, and only that
#
# The node is named after `hostname -s`, with this machine's CPUs and (90% of its) memory, in
# a partition `local`. Process tracking is /proc based (proctrack/linuxproc, task/none, no job
# accounting), so no cgroup set-up is needed. Ports 16817/16818 (not Slurm's defaults, so a
# real cluster's daemons on this machine are left alone). The configuration is written to
# $MIMICIT_SLURM_DIR/slurm.conf, never to /etc/slurm.
#
# Needs root (slurmd launches jobs) and Debian's packages slurm-wlm and munge, which
# scripts/setup.sh installs. munged is started only when none answers on the default socket.
#
# Environment: MIMICIT_SLURM_DIR (state folder, default /tmp/mimicit-slurm),
# MIMICIT_SLURM_PORT (slurmctld port, default 16817; slurmd uses the next one),
# MIMICIT_SLURM_WAIT (seconds to wait for the node to be idle, default 60).
set -euo pipefail

STATE="${MIMICIT_SLURM_DIR:-/tmp/mimicit-slurm}"
PORT="${MIMICIT_SLURM_PORT:-16817}"
WAIT="${MIMICIT_SLURM_WAIT:-60}"
CONF="$STATE/slurm.conf"

log() { echo "local-cluster: $*" >&2; }
die() {
  log "$*"
  exit 1
}

munge_works() { munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; }

# Runs "$@" until it succeeds or $1 seconds pass; returns its last status.
wait_for() {
  local limit=$1
  shift
  local start=$SECONDS
  until "$@"; do
    ((SECONDS - start < limit)) || return 1
    sleep 1
  done
}

start_munge() {
  if munge_works; then
    log "munged already answers: using it"
    return
  fi
  local key=/etc/munge/munge.key
  if [[ ! -s $key ]]; then
    log "creating the munge key $key"
    mkdir -p /etc/munge
    if command -v mungekey >/dev/null; then
      mungekey --create --keyfile="$key"
    else
      dd if=/dev/urandom of="$key" bs=1 count=1024 status=none
    fi
    chown munge:munge "$key"
    chmod 0400 "$key"
  fi
  install -d -o munge -g munge -m 0755 /run/munge
  install -d -o munge -g munge -m 0700 /var/lib/munge /var/log/munge
  runuser -u munge -- munged
  touch "$STATE/munged.ours"
  wait_for 20 munge_works || die "munged does not answer; see /var/log/munge/munged.log"
  log "munged started"
}

write_conf() {
  local host cpus mem
  host=$(hostname -s)
  cpus=$(nproc)
  mem=$(awk '/^MemTotal:/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
  cat >"$CONF" <<CONF
# Written by scripts/slurm/local-cluster.sh: one node, this machine.
ClusterName=mimicit-local
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
AuthType=auth/munge
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
MinJobAge=600
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=local Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
}

node_idle() {
  local state
  state=$(SLURM_CONF="$CONF" sinfo --noheader --format=%t 2>/dev/null | head -n1) || return 1
  [[ $state == idle ]]
}

start() {
  [[ $(id -u) -eq 0 ]] || die "needs root (slurmd launches the jobs)"
  for cmd in munged munge slurmctld slurmd sinfo sbatch scontrol; do
    command -v "$cmd" >/dev/null || die "$cmd not found: install Debian's slurm-wlm and munge (scripts/setup.sh does)"
  done
  if [[ -f $STATE/slurmctld.pid ]] && kill -0 "$(cat "$STATE/slurmctld.pid")" 2>/dev/null; then
    die "a cluster from $STATE is running: stop it first ($0 stop)"
  fi
  mkdir -p "$STATE/ctld" "$STATE/d" "$STATE/log"
  rm -f "$STATE/munged.ours"
  start_munge
  write_conf
  slurmctld -f "$CONF" || die "slurmctld did not start; see $STATE/log/slurmctld.log"
  wait_for 20 test -s "$STATE/slurmctld.pid" || die "slurmctld wrote no pid file; see $STATE/log/slurmctld.log"
  slurmd -f "$CONF" || die "slurmd did not start; see $STATE/log/slurmd.log"
  if ! wait_for "$WAIT" node_idle; then
    SLURM_CONF="$CONF" sinfo >&2 || true
    tail -n 20 "$STATE/log/slurmctld.log" "$STATE/log/slurmd.log" >&2 || true
    die "the node is not idle after ${WAIT}s"
  fi
  log "node $(hostname -s) idle; configuration $CONF"
  echo "export SLURM_CONF=$CONF"
}

# Ends the process in pid file $1 (SIGTERM, then SIGKILL after 10 s).
end_pid_file() {
  local file=$1 pid
  [[ -s $file ]] || return 0
  pid=$(cat "$file")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    wait_for 10 bash -c "! kill -0 $pid 2>/dev/null" || kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$file"
}

stop() {
  if [[ -f $CONF ]]; then
    # Asks both daemons to stop; bounded, and the pid files settle it either way.
    SLURM_CONF="$CONF" timeout 10 scontrol shutdown >/dev/null 2>&1 || true
  fi
  end_pid_file "$STATE/slurmd.pid"
  end_pid_file "$STATE/slurmctld.pid"
  if [[ -f $STATE/munged.ours ]]; then
    end_pid_file /run/munge/munged.pid
    rm -f "$STATE/munged.ours"
  fi
  log "stopped"
}

case "${1:-}" in
start) start ;;
stop) stop ;;
*)
  echo "usage: $0 start|stop" >&2
  exit 2
  ;;
esac
