#!/usr/bin/env bash
# Starts the test OpenID Connect issuers (ci/oidc/provider.mjs, npm's oidc-provider) for the sign-in tests:
# issuer A at http://127.0.0.1:9460 and issuer B at http://127.0.0.1:9461 (GPUC_OIDC_PORT_A / _B change them).
#
#  - installs Debian's nodejs and npm with apt when node is missing (needs root), and the locked packages with npm ci
#    when node_modules does not match package-lock.json
#  - idempotent: issuers that already answer are left running; a stale process from an earlier run is stopped first
#  - waits until both issuers serve their discovery documents, or fails with the log's tail
#  - writes $GPUC_OIDC_DIR/env.sh, which exports GPUC_TEST_OIDC_A and GPUC_TEST_OIDC_B for the tests
# Stop it with: kill "$(cat /tmp/gpuc-oidc/pid)"
set -euo pipefail
cd "$(dirname "$0")"
PORT_A="${GPUC_OIDC_PORT_A:-9460}"
PORT_B="${GPUC_OIDC_PORT_B:-9461}"
DIR="${GPUC_OIDC_DIR:-/tmp/gpuc-oidc}"
export GPUC_OIDC_PORT_A="$PORT_A" GPUC_OIDC_PORT_B="$PORT_B"
log() { echo "oidc: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }
mkdir -p "$DIR"

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  [ "$(id -u)" -eq 0 ] || die "node and npm are missing; as root run: apt-get install nodejs npm"
  log "installing nodejs and npm (apt) ..."
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends nodejs npm >&2
fi

up() { # up <port>: the issuer at that port serves its discovery document
  node -e "fetch('http://127.0.0.1:$1/.well-known/openid-configuration').then(r=>r.json()).then(j=>process.exit(j.issuer==='http://127.0.0.1:$1'?0:1),()=>process.exit(1))" 2>/dev/null
}

write_env() {
  printf 'export GPUC_TEST_OIDC_A=http://127.0.0.1:%s GPUC_TEST_OIDC_B=http://127.0.0.1:%s\n' "$PORT_A" "$PORT_B" > "$DIR/env.sh"
}

if up "$PORT_A" && up "$PORT_B"; then
  write_env
  log "issuers already running at :$PORT_A and :$PORT_B"
  exit 0
fi

if [ -f "$DIR/pid" ] && kill -0 "$(cat "$DIR/pid")" 2>/dev/null; then
  log "stopping a provider that does not answer (pid $(cat "$DIR/pid"))"
  kill "$(cat "$DIR/pid")" 2>/dev/null || true
  sleep 1
fi

# npm ci when the installed tree is not the locked one (a fresh clone has none).
if ! [ -f node_modules/.package-lock.json ] || ! cmp -s <(node -e "const l=require('./package-lock.json');console.log(JSON.stringify(Object.fromEntries(Object.entries(l.packages).filter(([k])=>k).map(([k,v])=>[k,v.version]))))") \
      <(node -e "const l=require('./node_modules/.package-lock.json');console.log(JSON.stringify(Object.fromEntries(Object.entries(l.packages).filter(([k])=>k).map(([k,v])=>[k,v.version]))))"); then
  log "installing the provider's packages (npm ci) ..."
  npm ci --no-audit --no-fund --loglevel=error >&2 || die "npm ci failed"
fi

nohup node provider.mjs > "$DIR/provider.log" 2>&1 < /dev/null &
echo $! > "$DIR/pid"
for _ in $(seq 1 60); do
  if up "$PORT_A" && up "$PORT_B"; then
    write_env
    log "issuers at http://127.0.0.1:$PORT_A and http://127.0.0.1:$PORT_B (pid $(cat "$DIR/pid"), log $DIR/provider.log)"
    exit 0
  fi
  kill -0 "$(cat "$DIR/pid")" 2>/dev/null || break
  sleep 0.5
done
tail -n 20 "$DIR/provider.log" >&2 || true
die "the provider did not start (log: $DIR/provider.log)"
