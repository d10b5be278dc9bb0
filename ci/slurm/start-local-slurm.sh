#!/usr/bin/env bash
# Install (if needed) and start a single-host Slurm 22.05 cluster from Debian 12 packages
# (GpuCommons copy: 4 virtual nodes n[1-4] by default, no slurmrestd: the backend uses the CLI),
# bound to 127.0.0.1, with fake count-only GPUs. Idempotent: re-running while it is up
# only reports status. Must run as root. Stop with stop-local-slurm.sh.
#
# Environment knobs (all optional):
#   SLURM_NODES=4         number of virtual nodes (1 = node named after `hostname -s`;
#                         >1 = n[1-N], several slurmd on this host; see README)
#   SLURM_GPUS_PER_NODE=8 fake GPUs per node
#   SLURM_CPUS_PER_NODE=32 CPUs advertised per node (config_overrides, may exceed real cores)
#   SLURM_MEM_PER_NODE=16000 MB advertised per node
#   (GPUs are declared with gres.conf File= pointing at fake char devices made with
#    mknod c 1 3, i.e. /dev/null clones. A count-only "Name=gpu Count=N" line without File=
#    is silently dropped by Slurm 22.05's gres/gpu plugin: the node goes INVAL, 0 < N.)
#   SLURM_ACCOUNTING=1    1 = MariaDB + slurmdbd (sacct, multifactor priority); 0 = none
#   SLURM_REST=0          1 = start slurmrestd on unix socket /run/slurmrestd/slurmrestd.sock (rest_auth/local)
#   SLURM_CLUSTER=localgpu
# Flags:
#   --clean   stop, wipe all Slurm/DB state first, then start fresh
#   --install-only
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
NODES="${SLURM_NODES:-4}"
GPUS="${SLURM_GPUS_PER_NODE:-8}"
CPUS="${SLURM_CPUS_PER_NODE:-32}"
MEM="${SLURM_MEM_PER_NODE:-16000}"
ACCOUNTING="${SLURM_ACCOUNTING:-1}"
REST="${SLURM_REST:-0}"
CLUSTER="${SLURM_CLUSTER:-localgpu}"
HOST="$(hostname -s)"

ETC=/etc/slurm
STATEDIR=/var/lib/slurm/slurmctld
SPOOLDIR=/var/spool/slurmd
LOGDIR=/var/log/slurm
RUNDIR=/run/slurm
FAKEDEV=/var/lib/slurm/fakegpu
DBDIR=/var/lib/slurm/mysql
DBPASS_FILE=/etc/slurm/.dbpass
REST_USER=slurmrest
REST_SOCK=/run/slurmrestd/slurmrestd.sock   # dir owned by $REST_USER (bind happens after -u)
REST_PORT=6820

log() { echo "[start-local-slurm] $*"; }
die() { echo "[start-local-slurm] ERROR: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root"

CLEAN=0; INSTALL_ONLY=0
for a in "$@"; do
  case "$a" in
    --clean) CLEAN=1 ;;
    --install-only) INSTALL_ONLY=1 ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) die "unknown arg $a" ;;
  esac
done

T0=$(date +%s.%N)

# ---------------------------------------------------------------- install
install_pkgs() {
  local pkgs=(slurm-wlm slurmctld slurmd slurm-client munge curl jq)
  [ "$ACCOUNTING" = 1 ] && pkgs+=(slurmdbd mariadb-server)
  [ "$REST" = 1 ] && pkgs+=(slurmrestd)
  local missing=()
  for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} = 0 ] && return 0
  log "installing: ${missing[*]}"
  # Keep the packages' maintainer scripts from starting daemons (no systemd here anyway).
  local made_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; made_policy=1
  fi
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
  [ $made_policy = 1 ] && rm -f /usr/sbin/policy-rc.d
  return 0
}
install_pkgs
[ $INSTALL_ONLY = 1 ] && { log "installed"; exit 0; }

if [ $CLEAN = 1 ]; then
  "$HERE/stop-local-slurm.sh" || true
  log "wiping state"
  rm -rf "$STATEDIR" "$SPOOLDIR" "$LOGDIR"/* "$RUNDIR" "$FAKEDEV" "$DBDIR"
fi

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
wait_for() { # wait_for <seconds> <cmd...>   (gives up early if $WATCH_PID names a dead pidfile)
  local t=$1; shift; local end=$(( $(date +%s) + t ))
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -ge "$end" ] && return 1
    if [ -n "${WATCH_PID:-}" ] && [ -f "$WATCH_PID" ] && ! kill -0 "$(cat "$WATCH_PID")" 2>/dev/null; then return 1; fi
    sleep 0.2
  done
}

# ---------------------------------------------------------------- users, dirs
id "$REST_USER" >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin "$REST_USER"
install -d -o slurm -g slurm -m 0755 "$STATEDIR" "$LOGDIR" "$RUNDIR"
install -d -o root -g root -m 0755 "$SPOOLDIR"
install -d -o munge -g munge -m 0755 /run/munge
install -d -o munge -g munge -m 0700 /var/log/munge /var/lib/munge
[ -s /etc/munge/munge.key ] || { mungekey --create --force; chown munge:munge /etc/munge/munge.key; chmod 0400 /etc/munge/munge.key; }


# ---------------------------------------------------------------- config
GRES_SPEC="gpu:$GPUS"
if [ "$NODES" -le 1 ]; then
  NODE_NAMES=("$HOST")
  NODE_LINES="NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM Gres=$GRES_SPEC State=UNKNOWN"
else
  NODE_NAMES=(); for i in $(seq 1 "$NODES"); do NODE_NAMES+=("n$i"); done
  NODE_LINES="NodeName=n[1-$NODES] NodeHostname=$HOST NodeAddr=127.0.0.1 Port=[17001-$((17000+NODES))] CPUs=$CPUS RealMemory=$MEM Gres=$GRES_SPEC State=UNKNOWN"
fi
GRES_LINES=""
for n in "${NODE_NAMES[@]}"; do
  install -d -m 0755 "$FAKEDEV/$n"
  for g in $(seq 0 $((GPUS-1))); do
    # Slurm wants a character/block device; a regular file only logs an error per job start.
    [ -e "$FAKEDEV/$n/nvidia$g" ] || mknod -m 0666 "$FAKEDEV/$n/nvidia$g" c 1 3 2>/dev/null || : > "$FAKEDEV/$n/nvidia$g"
  done
  GRES_LINES+="NodeName=$n Name=gpu File=$FAKEDEV/$n/nvidia[0-$((GPUS-1))]"$'\n'
done
if [ "$ACCOUNTING" = 1 ]; then
  ACCT_LINES="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=$HOST
AccountingStoragePort=6819
AccountingStorageTRES=gres/gpu
JobCompType=jobcomp/none"
  PRIO_LINES="PriorityType=priority/multifactor
PriorityWeightFairshare=10000
PriorityWeightAge=1000
PriorityWeightJobSize=0
PriorityWeightTRES=GRES/gpu=1000"
else
  ACCT_LINES="AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none"
  PRIO_LINES="PriorityType=priority/basic"
fi

render() { # render <template> <dest> <mode> <owner>
  local tmp; tmp=$(mktemp)
  awk -v host="$HOST" -v cluster="$CLUSTER" -v statedir="$STATEDIR" -v spooldir="$SPOOLDIR" \
      -v logdir="$LOGDIR" -v rundir="$RUNDIR" -v nodes="$NODE_LINES" -v gres="$GRES_LINES" \
      -v acct="$ACCT_LINES" -v prio="$PRIO_LINES" -v dbpass="${DBPASS:-}" -v dbdir="$DBDIR" '
    { gsub(/@HOST@/, host); gsub(/@CLUSTER@/, cluster); gsub(/@STATEDIR@/, statedir);
      gsub(/@SPOOLDIR@/, spooldir); gsub(/@LOGDIR@/, logdir); gsub(/@RUNDIR@/, rundir);
      gsub(/@DBPASS@/, dbpass); gsub(/@DBDIR@/, dbdir);
      if ($0 == "@NODES@") $0 = nodes; else if ($0 == "@GRES_LINES@") $0 = gres;
      else if ($0 == "@ACCOUNTING@") $0 = acct; else if ($0 == "@PRIORITY@") $0 = prio;
      print }' "$1" > "$tmp"
  install -m "$3" -o "$4" -g "$4" "$tmp" "$2"; rm -f "$tmp"
}
install -d -m 0755 "$ETC"
conf_sum() { # a checksum of the rendered configuration; "missing" for a file a fresh machine lacks
  local f out=""
  for f in "$ETC/slurm.conf" "$ETC/gres.conf"; do
    if [ -f "$f" ]; then out+="$(md5sum < "$f")"; else out+="missing "; fi
  done
  echo "$out"
}
CONF_BEFORE=$(conf_sum)
render "$HERE/slurm.conf.template" "$ETC/slurm.conf" 0644 root
render "$HERE/gres.conf.template" "$ETC/gres.conf" 0644 root
render "$HERE/oci.conf.template" "$ETC/oci.conf" 0644 root # read at each container step: no reconfigure needed
CONF_CHANGED=0
[ "$CONF_BEFORE" = "$(conf_sum)" ] || CONF_CHANGED=1

# ---------------------------------------------------------------- munge
if ! pid_alive /run/munge/munged.pid; then
  log "starting munged"
  runuser -u munge -- /usr/sbin/munged --pid-file=/run/munge/munged.pid
fi
wait_for 10 sh -c 'munge -n | unmunge' || die "munge not working"

# ---------------------------------------------------------------- mariadb + slurmdbd
# The client reads no option files: it talks to our private server only, whatever /etc/mysql holds (or lacks).
dbclient() { mariadb --no-defaults -uroot --socket=/run/mysqld/mysqld.sock "$@"; }
if [ "$ACCOUNTING" = 1 ]; then
  [ -s "$DBPASS_FILE" ] || { head -c 18 /dev/urandom | base64 | tr -d '/+=' > "$DBPASS_FILE"; chmod 0600 "$DBPASS_FILE"; }
  DBPASS=$(cat "$DBPASS_FILE")
  render "$HERE/slurmdbd.conf.template" "$ETC/slurmdbd.conf" 0600 slurm
  render "$HERE/mariadb-slurm.cnf.template" "$ETC/mariadb-slurm.cnf" 0644 root
  install -d -o mysql -g mysql -m 0755 /run/mysqld
  if ! pid_alive /run/mysqld/slurm-mariadbd.pid; then
    if [ ! -d "$DBDIR/mysql" ]; then
      log "initialising private MariaDB datadir $DBDIR"
      install -d -o mysql -g mysql -m 0750 "$DBDIR"
      mariadb-install-db --defaults-file="$ETC/mariadb-slurm.cnf" --auth-root-authentication-method=socket >/dev/null 2>&1 \
        || die "mariadb-install-db failed"
    fi
    log "starting mariadbd (unix socket only, datadir $DBDIR)"
    [ -S /run/mysqld/mysqld.sock ] && dbclient -e 'select 1' >/dev/null 2>&1 && die "another MariaDB already owns /run/mysqld/mysqld.sock"
    setsid /usr/sbin/mariadbd --defaults-file="$ETC/mariadb-slurm.cnf" >/dev/null 2>&1 < /dev/null &
    wait_for 60 dbclient -e 'select 1' || die "mariadb did not start or does not answer (see $DBDIR/mariadbd.err; client: $(dbclient -e 'select 1' 2>&1 | head -1))"
  fi
  dbclient <<SQL
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DBPASS';
ALTER USER 'slurm'@'localhost' IDENTIFIED BY '$DBPASS';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
FLUSH PRIVILEGES;
SQL
  if ! pid_alive "$RUNDIR/slurmdbd.pid"; then
    log "starting slurmdbd"
    /usr/sbin/slurmdbd
  fi
  WATCH_PID=$RUNDIR/slurmdbd.pid wait_for 60 sacctmgr -n list cluster || die "slurmdbd not answering (see $LOGDIR/slurmdbd.log)"
  if ! sacctmgr -n -P list cluster format=cluster | grep -qx "$CLUSTER"; then
    sacctmgr -i add cluster "$CLUSTER" >/dev/null
  fi
fi

# ---------------------------------------------------------------- slurmctld
CTLD_WAS_UP=0
pid_alive "$RUNDIR/slurmctld.pid" && CTLD_WAS_UP=1
if [ $CTLD_WAS_UP = 0 ]; then
  log "starting slurmctld"
  /usr/sbin/slurmctld
fi
WATCH_PID=$RUNDIR/slurmctld.pid wait_for 60 scontrol ping || die "slurmctld not answering (see $LOGDIR/slurmctld.log)"
wait_for 30 sh -c "scontrol ping | grep -q UP" || die "slurmctld not UP"

if [ $CONF_CHANGED = 1 ] && [ $CTLD_WAS_UP = 1 ]; then
  log "configuration changed: scontrol reconfigure"
  scontrol reconfigure || log "scontrol reconfigure failed; a node count change needs --clean"
fi

# ---------------------------------------------------------------- slurmd(s)
for n in "${NODE_NAMES[@]}"; do
  if ! pid_alive "$RUNDIR/slurmd-$n.pid"; then
    log "starting slurmd $n"
    install -d -m 0755 "$SPOOLDIR/$n"
    if [ "$NODES" -le 1 ]; then /usr/sbin/slurmd; else /usr/sbin/slurmd -N "$n"; fi
  fi
done
# wait for all nodes to be idle/mixed/allocated
all_up() { ! sinfo -h -N -o '%T' | grep -v -E '^(idle|mixed|allocated|completing)$' | grep -q .; }
node_bad() { sinfo -h -N -o '%T' | grep -q -E '^(inval|drained|down)'; }
end=$(( $(date +%s) + 60 ))
until all_up || node_bad || [ "$(date +%s)" -ge "$end" ]; do sleep 0.2; done
all_up || { sinfo -N -l; die "nodes did not come up (see $LOGDIR/slurmd-*.log)"; }

# ---------------------------------------------------------------- accounting associations
if [ "$ACCOUNTING" = 1 ]; then
  # root is added automatically with the cluster; add a default account for other users.
  sacctmgr -n -P list account format=account | grep -qx gpuusers || sacctmgr -i add account gpuusers Description=local Organization=local >/dev/null
  for u in root $REST_USER; do
    sacctmgr -n -P list assoc user=$u format=user | grep -qx $u || sacctmgr -i add user $u DefaultAccount=gpuusers >/dev/null
  done
fi

# ---------------------------------------------------------------- slurmrestd
if [ "$REST" = 1 ] && ! pid_alive "$RUNDIR/slurmrestd.pid"; then
  log "starting slurmrestd on unix:$REST_SOCK (rest_auth/local; clients must run as uid $REST_USER)"
  install -d -o "$REST_USER" -g "$REST_USER" -m 0755 "$(dirname "$REST_SOCK")"
  rm -f "$REST_SOCK"
  # -u/-g drop privileges; slurmrestd refuses to run as root or SlurmUser. No auth/jwt in
  # Debian's build, so only rest_auth/local over a unix socket can authenticate.
  setsid /usr/sbin/slurmrestd -u "$REST_USER" -g "$REST_USER" -a rest_auth/local \
      "unix:$REST_SOCK" >>"$LOGDIR/slurmrestd.log" 2>&1 < /dev/null &
  echo $! > "$RUNDIR/slurmrestd.pid"
  WATCH_PID=$RUNDIR/slurmrestd.pid wait_for 20 test -S "$REST_SOCK" || die "slurmrestd not listening (see $LOGDIR/slurmrestd.log)"
fi

T1=$(date +%s.%N)
log "up in $(awk -v a="$T0" -v b="$T1" 'BEGIN{printf "%.1f", b-a}') s"
sinfo -N -o '%N %T %c %m %G'
