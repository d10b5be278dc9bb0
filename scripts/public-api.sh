#!/usr/bin/env bash
# The public surface of the libraries others build on, tracked by Microsoft.CodeAnalysis.PublicApiAnalyzers
# (docs/contracts.md). With no argument: adds every public symbol missing from a project's PublicAPI.*.txt to its
# PublicAPI.Unshipped.txt (the analyzers' own code fix for RS0016, applied by dotnet format). --check: fails when a
# project's surface and its files disagree. --ship: moves the Unshipped lines to Shipped (at a release).
set -euo pipefail
cd "$(dirname "$0")/.."
projects=(src/GpuCommons.Core src/GpuCommons.Scheduling src/GpuCommons.Backends.Abstractions)
case "${1:-}" in
  "")
    for p in "${projects[@]}"; do
      dotnet format analyzers "$p" --diagnostics RS0016 --severity warn
    done ;;
  --check)
    for p in "${projects[@]}"; do
      dotnet format analyzers "$p" --diagnostics RS0016 RS0017 --severity warn --verify-no-changes
    done ;;
  --ship)
    for p in "${projects[@]}"; do
      { cat "$p/PublicAPI.Shipped.txt"; grep -v '^#nullable enable$' "$p/PublicAPI.Unshipped.txt" || true; } \
        | awk 'NR == 1 || $0 != "#nullable enable"' | { read -r first; echo "$first"; LC_ALL=C sort -u; } > "$p/PublicAPI.Shipped.txt.new"
      mv "$p/PublicAPI.Shipped.txt.new" "$p/PublicAPI.Shipped.txt"
      printf '#nullable enable\n' > "$p/PublicAPI.Unshipped.txt"
    done ;;
  *) echo "usage: $0 [--check|--ship]" >&2; exit 2 ;;
esac
