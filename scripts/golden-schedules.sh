#!/usr/bin/env bash
# Golden schedules: replays fixed workloads with every policy and records, per case, the SHA-256 of the schedule CSV
# (one row per run segment: job, submit, start, end, state, partition, GPUs, placement) and a sample of its rows.
# A refactor of the engine must leave every case byte-identical; a decision that changes on purpose regenerates them
# in its own commit.
#
#   scripts/golden-schedules.sh record [GPUC]   write test/GpuCommons.Simulation.Tests/Golden/*.golden
#   scripts/golden-schedules.sh check  [GPUC]   replay and diff against them (exit 1 on any difference)
#
# GPUC defaults to the Release build of src/GpuCommons.Cli (build it first). GOLDEN_ONLY=REGEX limits the run to the
# cases whose id (name.policy) matches.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-check}
gpuc=${2:-src/GpuCommons.Cli/bin/Release/net10.0/gpuc}
dir=test/GpuCommons.Simulation.Tests/Golden
philly=data/traces/philly/philly.csv.gz
policies="fifo fifo-easy multifactor multifactor-conservative las srtf"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# name|arguments
cases=(
  "philly-national|--trace $philly --fleet national"
  "philly-national-0.9|--trace $philly --fleet national --target-load 0.9"
  "philly-cluster2048-0.9|--trace $philly --fleet data/fleets/cluster-2048.csv --target-load 0.9"
  "synthetic-national|--synthetic 30000 --target-load 1.3 --fleet national"
)

status=0
for c in "${cases[@]}"; do
  name=${c%%|*}
  args=${c#*|}
  for policy in $policies; do
    id="$name.$policy"
    if [[ -n ${GOLDEN_ONLY:-} && ! $id =~ $GOLDEN_ONLY ]]; then
      continue
    fi
    csv="$work/$id.csv"
    # shellcheck disable=SC2086
    "$gpuc" simulate $args --policy "$policy" --schedule-out "$csv" --json > /dev/null
    out="$work/$id.golden"
    {
      echo "# gpuc simulate $args --policy $policy"
      echo "rows $(($(wc -l < "$csv") - 1))"
      echo "sha256 $(sha256sum "$csv" | cut -d' ' -f1)"
      # A sample of (job, start, placement): every 499th row, to show where a difference begins.
      awk -F, 'NR > 1 && (NR - 2) % 499 == 0 { print $1 "," $3 "," $8 }' "$csv"
    } > "$out"
    if [[ $mode == record ]]; then
      cp "$out" "$dir/$id.golden"
      echo "recorded $id"
    elif diff -q "$dir/$id.golden" "$out" > /dev/null; then
      echo "same     $id"
    else
      echo "CHANGED  $id"
      diff "$dir/$id.golden" "$out" | head -20 || true
      status=1
    fi
  done
done
exit $status
