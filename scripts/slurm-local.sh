#!/usr/bin/env bash
# A real, single-node Slurm on this machine, for trying the cluster path and for its tests:
#   scripts/slurm-local.sh up      install slurm-wlm and munge if missing, configure, start
#   scripts/slurm-local.sh down    stop the three daemons by their pid files
#   scripts/slurm-local.sh status  what runs, and sinfo
#   scripts/slurm-local.sh fresh   every job cancelled with its processes, down, the
#                                  controller's saved state cleared, up: a new controller with
#                                  no jobs, whose job ids start again at 1 (what CI starts)
# (make slurm-up / make slurm-down). Needs root: it installs Debian packages, writes
# /etc/slurm/slurm.conf (never over a file it did not write) and starts daemons. No systemd and
# no cgroups are needed: processes are tracked by parent id (proctrack/linuxproc), there is no
# accounting (so no sacct), and the node is this machine's CPUs and memory, without GPUs.
set -euo pipefail

CONF=/etc/slurm/slurm.conf
MARK="# written by fersweep scripts/slurm-local.sh"
STATE=/var/lib/fersweep-slurm
LOGS=/var/log/fersweep-slurm
RUN=/run/fersweep-slurm
HOST=$(hostname -s)

say() { echo "slurm-local: $*"; }
fail() { echo "slurm-local: $*" >&2; exit 1; }

install_packages() {
    command -v slurmctld >/dev/null && command -v munged >/dev/null && return
    [ "$(id -u)" = 0 ] || fail "slurm-wlm and munge are missing; run as root to install them"
    say "installing slurm-wlm and munge (Debian's packages)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
}

pin_host_name() {
    # slurmctld and slurmd find each other by the node's name
    getent hosts "$HOST" >/dev/null || echo "127.0.0.1 $HOST" >>/etc/hosts
}

write_config() {
    if [ -f "$CONF" ] && ! grep -qF "$MARK" "$CONF"; then
        fail "$CONF exists and was not written by this script: this machine has its own Slurm; leaving it alone"
    fi
    local cpus memory
    cpus=$(nproc)
    # the node offers its memory less 1 GiB for the system; each CPU gets its share by default
    # (without DefMemPerCPU one job would be given the node's whole memory)
    memory=$(( $(awk '/MemTotal/ {print int($2 / 1024)}' /proc/meminfo) - 1024 ))
    mkdir -p "$(dirname "$CONF")" "$STATE/ctld" "$STATE/d" "$LOGS" "$RUN"
    cat >"$CONF" <<EOF
$MARK
ClusterName=fersweep-local
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
DefMemPerCPU=$(( memory / cpus ))
ReturnToService=2
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$memory State=UNKNOWN
PartitionName=local Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF
    say "wrote $CONF: one node, $cpus CPUs, $memory MB, no GPU, partition 'local'"
}

running() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

start_munge() {
    running /run/munge/munged.pid && return
    [ -f /etc/munge/munge.key ] || mungekey --create --keyfile=/etc/munge/munge.key
    chown munge:munge /etc/munge/munge.key
    chmod 0400 /etc/munge/munge.key
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge /run/munge /var/log/munge /var/lib/munge
    runuser -u munge -- /usr/sbin/munged
}

wait_for_idle_node() {
    for _ in $(seq 60); do
        case "$(sinfo -h -n "$HOST" -o %T 2>/dev/null)" in
            idle*|mixed*|allocated*) return 0 ;;
            down*|drain*) scontrol update NodeName="$HOST" State=RESUME 2>/dev/null || true ;;
        esac
        sleep 1
    done
    fail "the node did not come up; see $LOGS/slurmctld.log and $LOGS/slurmd.log"
}

up() {
    [ "$(id -u)" = 0 ] || fail "run as root (it writes $CONF and starts daemons)"
    install_packages
    pin_host_name
    write_config
    start_munge
    running "$RUN/slurmctld.pid" || /usr/sbin/slurmctld
    running "$RUN/slurmd.pid" || /usr/sbin/slurmd
    wait_for_idle_node
    sinfo
}

stop() {
    local pid_file=$1
    running "$pid_file" || return 0
    local pid
    pid=$(cat "$pid_file")
    kill "$pid"
    for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.5; done
    kill -9 "$pid" 2>/dev/null || true
}

down() {
    stop "$RUN/slurmd.pid"
    stop "$RUN/slurmctld.pid"
    stop /run/munge/munged.pid
    say "stopped"
}

status() {
    for pid_file in /run/munge/munged.pid "$RUN/slurmctld.pid" "$RUN/slurmd.pid"; do
        if running "$pid_file"; then say "$(basename "$pid_file" .pid) runs ($(cat "$pid_file"))"
        else say "$(basename "$pid_file" .pid) is not running"; fi
    done
    sinfo 2>/dev/null || true
}

cancel_all_jobs() {
    # Jobs an earlier run left behind (a test run killed mid-sweep) would share the node's CPUs
    # with the next run and be started again by a restarted controller: killed, then cancelled.
    sinfo >/dev/null 2>&1 || return 0
    local jobs
    jobs=$(squeue --noheader --format=%i | tr '\n' ' ')
    [ -n "${jobs// }" ] || return 0
    say "cancelling jobs left from an earlier run: $jobs"
    # shellcheck disable=SC2086
    scancel --full --signal=KILL $jobs 2>/dev/null || true
    # shellcheck disable=SC2086
    scancel $jobs 2>/dev/null || true
    for _ in $(seq 60); do
        [ -z "$(squeue --noheader --format=%i)" ] && return 0
        sleep 1
    done
    fail "jobs still queued after cancelling them: $(squeue --noheader --format='%i %T')"
}

fresh() {
    cancel_all_jobs
    down
    rm -rf "${STATE:?}/ctld"
    up
}

case "${1:-}" in
    up) up ;;
    fresh) fresh ;;
    down) down ;;
    status) status ;;
    *) fail "usage: $0 up|down|status|fresh" ;;
esac
