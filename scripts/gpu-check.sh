#!/usr/bin/env bash
# GPU truth check for the local backend, for a GPU machine that has no .NET (issue 5, section 5).
#
# On a machine with .NET:    scripts/publish-gpuc.sh          (→ artifacts/gpuc-linux-x64.tar.xz, self-contained, xz)
# On the GPU machine:        bash scripts/gpu-check.sh [artifacts/gpuc-linux-x64.tar.xz]
#   (with the device tool: carry ["artifacts/gpuc-linux-x64.tar.xz"], command "bash scripts/gpu-check.sh", timeout ~420 s)
#
# Stage 1 runs the local backend alone (`gpuc local gpus`, `gpuc local run`): real GPU discovered, a PyTorch job on it
# with CUDA_VISIBLE_DEVICES = its UUID, its process seen by nvidia-smi. Stage 2 starts `gpuc serve` on SQLite with the local backend, shows that the backend discovered the real GPU (not virtual
# ones), submits a PyTorch CUDA job for one GPU, and prints the job record while it runs (with its GPU usage from
# nvidia-smi) and when it has ended, next to what nvidia-smi itself says. Everything it prints is also written under
# $OUT/gpu-check/ when $OUT is set. Exit status 0 only if every check passed.
#
# Settings (environment): GPUC_CHECK_PROJECT (default: the first project the server lists, else "demo"),
# GPUC_CHECK_PYTHON (default: a python3 that imports torch), GPUC_CHECK_SECONDS (how long each job computes, default 45).
set -uo pipefail

archive=${1:-artifacts/gpuc-linux-x64.tar.xz}
seconds=${GPUC_CHECK_SECONDS:-45}
work=$(mktemp -d /tmp/gpuc-gpu-check.XXXXXX)
report=${OUT:+$OUT/gpu-check}
[ -n "$report" ] && mkdir -p "$report"
failures=0
server_pid=

log() { printf '\n=== %s\n' "$*"; }
check() { # check NAME CONDITION-RESULT(0/1)
  if [ "$2" = 0 ]; then echo "PASS $1"; else echo "FAIL $1"; failures=$((failures + 1)); fi
}
finish() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill "$server_pid" 2>/dev/null; sleep 2; kill -9 "$server_pid" 2>/dev/null
  fi
  if [ -n "$report" ]; then
    cp "$work"/*.log "$work"/*.json "$work"/*.jsonl "$report"/ 2>/dev/null
  fi
}
trap finish EXIT
exec > >(tee ${report:+"$report/gpu-check.txt"}) 2>&1

log "machine"
date -u; uname -a; nproc
export PATH="$PATH:/usr/local/nvidia/bin"
if ! command -v nvidia-smi >/dev/null; then echo "FAIL no nvidia-smi on this machine"; exit 2; fi
nvidia-smi -L
nvidia-smi --query-gpu=index,uuid,name,memory.total,memory.used,utilization.gpu --format=csv
gpu_uuid=$(nvidia-smi --query-gpu=uuid --format=csv,noheader | head -n1 | tr -d ' ')

log "python with torch"
python=${GPUC_CHECK_PYTHON:-}
if [ -z "$python" ]; then
  for candidate in /opt/torch/.venv/bin/python3 python3 python; do
    if command -v "$candidate" >/dev/null && "$candidate" -c 'import torch' 2>/dev/null; then python=$(command -v "$candidate"); break; fi
  done
fi
if [ -z "$python" ]; then echo "FAIL no python with torch (set GPUC_CHECK_PYTHON)"; exit 2; fi
"$python" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())'

log "unpack gpuc ($archive)"
if [ ! -f "$archive" ]; then echo "FAIL $archive not found: run scripts/publish-gpuc.sh first and carry it"; exit 2; fi
mkdir -p "$work/gpuc"
if command -v xz >/dev/null; then
  tar -xJf "$archive" -C "$work/gpuc" || { echo "FAIL cannot unpack $archive"; exit 2; }
else # no xz tool: Python's lzma reads it too
  "$python" -c 'import sys, tarfile; tarfile.open(sys.argv[1], "r:xz").extractall(sys.argv[2])' "$archive" "$work/gpuc" \
    || { echo "FAIL cannot unpack $archive"; exit 2; }
fi
gpuc="$work/gpuc/gpuc"
chmod +x "$gpuc"
"$gpuc" --version 2>/dev/null || true

log "stage 1: the local backend alone (gpuc local gpus / gpuc local run)"
"$gpuc" local gpus >"$work/local-gpus.json" 2>&1
cat "$work/local-gpus.json"; echo
grep -q "$gpu_uuid" "$work/local-gpus.json"; check "local backend discovers the real GPU ($gpu_uuid)" $?
grep -q '"virtualGpus":false' "$work/local-gpus.json"; check "local backend fleet is not virtual" $?
write_job() { # the CUDA job: which GPU it sees, then bf16 matmuls for $seconds seconds
cat >"$work/job.py" <<PY
import os, time, torch
print("CUDA_VISIBLE_DEVICES", os.environ.get("CUDA_VISIBLE_DEVICES"), "GPUC_JOB_ID", os.environ.get("GPUC_JOB_ID"), "uid", os.getuid(), flush=True)
print("device_count", torch.cuda.device_count(), "name", torch.cuda.get_device_name(0), flush=True)
a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
b = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
n, start = 0, time.time()
while time.time() - start < $seconds:
    c = a @ b
    n += 1
    if n % 200 == 0:
        torch.cuda.synchronize()
torch.cuda.synchronize()
elapsed = time.time() - start
print("matmuls", n, "seconds", round(elapsed, 1), "TFLOP/s", round(2 * 8192**3 * n / elapsed / 1e12, 1), flush=True)
PY
}
write_job
chmod 0755 "$work"; chmod 0644 "$work/job.py" # a tenant's job (stage 2) reads it as its own account
(cd "$work" && "$gpuc" local run --gpus 1 --time 10m --sample-every 5s -- "$python" "$work/job.py") >"$work/local-run.jsonl" 2>&1
local_rc=$?
cat "$work/local-run.jsonl"
check "local run exits 0" $local_rc
grep -q '"kind":"Finished"' "$work/local-run.jsonl"; check "local run: Finished event" $?
grep -q "CUDA_VISIBLE_DEVICES $gpu_uuid" "$work/local-run.jsonl"; check "local run: CUDA_VISIBLE_DEVICES is the GPU's UUID" $?
grep -q "device_count 1" "$work/local-run.jsonl"; check "local run: the job saw exactly one GPU" $?
grep '"gpuUsage"' "$work/local-run.jsonl" | grep -q '"inJob":true'; check "local run: nvidia-smi shows the job's process on its GPU" $?

log "stage 1b: isolation (a job as another account sees only the GPUs it was given)"
if [ "$(id -u)" = 0 ]; then
  id gpuc-check >/dev/null 2>&1 || useradd --create-home --shell /bin/bash gpuc-check
  cat >"$work/probe.sh" <<'SH'
echo "uid $(id -u) gid $(id -g)"
for d in /dev/nvidia[0-9]*; do
  if ( exec 3<"$d" ) 2>/dev/null; then echo "open $d ok"; else echo "open $d refused: $( ( exec 3<"$d" ) 2>&1 | sed 's/.*: //')"; fi
done
nvidia-smi -L 2>&1 | sed 's/^/smi: /'
SH
  chmod 0755 "$work"; chmod 0644 "$work/probe.sh"
  (cd / && "$gpuc" local run --gpus 0 --as gpuc-check --time 2m -- sh "$work/probe.sh") >"$work/iso-nogpu.jsonl" 2>&1
  cat "$work/iso-nogpu.jsonl"
  grep -q 'uid 0 ' "$work/iso-nogpu.jsonl"; [ $? != 0 ]; check "isolation: the job does not run as root" $?
  grep -q 'open /dev/nvidia0 refused: Permission denied' "$work/iso-nogpu.jsonl"; check "isolation: a job given no GPU cannot open /dev/nvidia0 (EACCES)" $?
  grep -q 'smi: GPU ' "$work/iso-nogpu.jsonl"; [ $? != 0 ]; check "isolation: nvidia-smi in a job given no GPU lists no GPU" $?
  (cd / && "$gpuc" local run --gpus 1 --as gpuc-check --time 2m -- sh "$work/probe.sh") >"$work/iso-gpu0.jsonl" 2>&1
  cat "$work/iso-gpu0.jsonl"
  grep -q 'open /dev/nvidia0 ok' "$work/iso-gpu0.jsonl"; check "isolation: a job given GPU 0 opens /dev/nvidia0" $?
  [ "$(grep -o 'smi: GPU [0-9]*:' "$work/iso-gpu0.jsonl" | sort -u | wc -l)" = 1 ]; check "isolation: nvidia-smi in a job given GPU 0 lists exactly one GPU" $?
  grep -q "smi: GPU 0: .*$gpu_uuid" "$work/iso-gpu0.jsonl"; check "isolation: the GPU the job sees is $gpu_uuid" $?
else
  echo "SKIP isolation stage: not root"
fi

log "stage 2: gpuc serve"
port=$("$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
data="$work/data"
mkdir -p "$data"
"$gpuc" serve --urls "http://127.0.0.1:$port" --data-dir "$data" >"$work/serve.log" 2>&1 &
server_pid=$!
export GPUC_URL="http://127.0.0.1:$port"
ready=1
for _ in $(seq 1 240); do
  if ! kill -0 "$server_pid" 2>/dev/null; then break; fi
  if [ -s "$data/admin-token" ] && "$python" -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('$GPUC_URL/healthz', timeout=2).status == 200 else 1)" 2>/dev/null; then ready=0; break; fi
  sleep 0.5
done
check "server answers /healthz" $ready
if [ $ready != 0 ]; then tail -n 60 "$work/serve.log"; echo "$failures CHECK(S) FAILED (the server stage did not run)"; exit 1; fi
export GPUC_TOKEN=$(cat "$data/admin-token")
head -n 30 "$work/serve.log"

# A small helper: GET an API path with the admin token, print the JSON.
api() { "$python" - "$1" <<'PY'
import json, os, sys, urllib.request
req = urllib.request.Request(os.environ["GPUC_URL"] + sys.argv[1], headers={"Authorization": "Bearer " + os.environ["GPUC_TOKEN"]})
print(json.dumps(json.load(urllib.request.urlopen(req, timeout=10)), indent=2))
PY
}

log "fleet as the server sees it (the local backend's discovery)"
"$gpuc" nodes --json >"$work/nodes.json" 2>&1 || api /api/nodes >"$work/nodes.json" 2>&1
cat "$work/nodes.json"
grep -q "$gpu_uuid" "$work/nodes.json"; check "the real GPU ($gpu_uuid) is in the server's fleet" $?
grep -q "VIRTUAL GPUs" "$work/serve.log"; [ $? != 0 ]; check "the server does not run on virtual GPUs" $?

project=${GPUC_CHECK_PROJECT:-}
if [ -z "$project" ]; then
  project=$(api /api/projects 2>/dev/null | "$python" -c '
import json, sys
try:
    d = json.load(sys.stdin)
except Exception:
    sys.exit(0)
items = d if isinstance(d, list) else next((v for v in d.values() if isinstance(v, list)), []) if isinstance(d, dict) else []
for it in items:
    if isinstance(it, dict):
        for k in ("name", "slug", "id"):
            if it.get(k) is not None:
                print(it[k]); sys.exit(0)
')
  project=${project:-demo}
fi
echo "project: $project"

log "the CUDA job"
"$gpuc" submit --project "$project" --gpus 1 --time 10m --json -- "$python" "$work/job.py" >"$work/submit.json" 2>&1 \
  || "$gpuc" submit --project "$project" --gpus 1 --time 10m -- "$python" "$work/job.py" >"$work/submit.json" 2>&1
submit_rc=$?
cat "$work/submit.json"
check "gpuc submit" $submit_rc
job=$("$python" -c '
import json, re, sys
text = open(sys.argv[1]).read()
try:
    d = json.loads(text)
    for k in ("id", "jobId", "job_id"):
        if isinstance(d, dict) and d.get(k) is not None:
            print(d[k]); sys.exit(0)
except Exception:
    pass
m = re.search(r"\b(\d+)\b", text)
print(m.group(1) if m else "")
' "$work/submit.json")
if [ -z "$job" ]; then echo "FAIL no job id in the submit output"; exit 1; fi
echo "job id: $job"

log "while it runs: the job record (GPU usage from nvidia-smi) and nvidia-smi itself"
seen_usage=1
deadline=$((SECONDS + seconds + 240))
while [ $SECONDS -lt $deadline ]; do
  "$gpuc" show "$job" --json >"$work/show-running.json" 2>&1
  state=$("$python" -c 'import json,sys; d=json.load(open(sys.argv[1])); print(str(d.get("state") or d.get("status") or "").lower())' "$work/show-running.json" 2>/dev/null)
  if [ $seen_usage != 0 ] && grep -q '"processes"' "$work/show-running.json" && grep -q "$gpu_uuid" "$work/show-running.json" && grep -qi '"inJob": *true' "$work/show-running.json"; then
    seen_usage=0
    echo "--- gpuc show $job --json (running)"; cat "$work/show-running.json"
    echo "--- nvidia-smi at the same moment"
    nvidia-smi --query-gpu=index,uuid,utilization.gpu,memory.used --format=csv
    nvidia-smi --query-compute-apps=pid,gpu_uuid,process_name,used_memory --format=csv
  fi
  if [ "$state" = running ] && [ -z "${printed_smi:-}" ] && [ $((SECONDS - ${running_since:=$SECONDS})) -ge 10 ]; then
    printed_smi=1 # once, ten seconds into the run: the job record and nvidia-smi side by side
    echo "--- gpuc show $job --json (running)"; cat "$work/show-running.json"
    echo "--- nvidia-smi while the job runs"
    nvidia-smi --query-gpu=index,uuid,utilization.gpu,memory.used --format=csv
    nvidia-smi --query-compute-apps=pid,gpu_uuid,process_name,used_memory --format=csv | tee "$work/compute-apps-running.csv"
  fi
  case "$state" in finished|completed|succeeded|failed|cancelled|canceled|lost|walltimeexceeded|timeout) break ;; esac
  sleep 3
done
check "the running job's record shows its process on $gpu_uuid (from nvidia-smi)" $seen_usage
if [ $seen_usage != 0 ]; then
  echo "  (the server's job record should carry the backend's GetGpuUsageAsync(id) sample, e.g. as \"gpuUsage\" in GET /api/jobs/{id})"
fi

log "after the end"
"$gpuc" show "$job" --json >"$work/show-final.json" 2>&1
cat "$work/show-final.json"
grep -qiE '"(state|status)": *"(finished|completed|succeeded)"' "$work/show-final.json"; check "the job finished" $?
grep -qE '"exitCode": *0\b' "$work/show-final.json"; check "exit code 0" $?
echo "--- gpuc logs $job"
"$gpuc" logs "$job" 2>&1 | tee "$work/job-output.log"
grep -q "device_count 1" "$work/job-output.log"; check "the job saw exactly one GPU" $?
grep -q "CUDA_VISIBLE_DEVICES $gpu_uuid" "$work/job-output.log"; check "CUDA_VISIBLE_DEVICES is the GPU's UUID" $?
grep -q "matmuls" "$work/job-output.log"; check "the job computed on the GPU" $?
if [ "$(id -u)" = 0 ]; then
  grep -qE "uid (0|$(id -u))$" "$work/job-output.log"; [ $? != 0 ]; check "the tenant's job ran under its own uid, not root: $(grep -o 'uid [0-9]*' "$work/job-output.log" | head -1)" $?
  grep -q "$gpu_uuid" "$work/show-final.json" "$work/show-running.json"; check "the job record shows the real GPU's UUID" $?
fi

log "server log (tail)"
tail -n 40 "$work/serve.log"

log "result"
if [ $failures = 0 ]; then echo "ALL CHECKS PASSED"; else echo "$failures CHECK(S) FAILED"; fi
exit $((failures > 0))
