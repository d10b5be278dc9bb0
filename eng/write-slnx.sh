#!/usr/bin/env bash
# Writes GpuCommons.slnx listing every project under src/, test/ and bench/.
set -euo pipefail
cd "$(dirname "$0")/.."
{
  echo "<Solution>"
  for dir in src test bench; do
    projects=$(find "$dir" -name '*.csproj' -not -path '*/bin/*' -not -path '*/obj/*' 2>/dev/null | sort)
    [ -z "$projects" ] && continue
    echo "  <Folder Name=\"/$dir/\">"
    for p in $projects; do echo "    <Project Path=\"$p\" />"; done
    echo "  </Folder>"
  done
  echo "</Solution>"
} > GpuCommons.slnx
