#!/usr/bin/env bash
# Builds `gpuc` of the previous release (the commit in ci/previous-release.rev) into a folder outside the repository, for
# the rolling-upgrade tests (test/GpuCommons.Server.Tests/UpgradeTests.cs): an older leader and a newer standby on one
# PostgreSQL database, and the other way round. Prints the path of its gpuc.dll; the tests find it there, or through
# GPUC_PREVIOUS_RELEASE (a gpuc.dll). Built once per commit (a second run only prints the path).
#   bash ci/previous-release.sh          # build if needed, print the path
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
rev="$(tr -d '[:space:]' < "$root/ci/previous-release.rev")"
dir="${GPUC_PREVIOUS_RELEASE_DIR:-${TMPDIR:-/tmp}/gpuc-previous-release}/$rev"
if [[ ! -f "$dir/out/gpuc.dll" ]]; then
    rm -rf "$dir/src"
    mkdir -p "$dir/src"
    # The release's own tree (no checkout of the repository is touched).
    git -C "$root" archive "$rev" | tar -x -C "$dir/src"
    dotnet build "$dir/src/src/GpuCommons.Cli" -c Release -o "$dir/out" -p:TreatWarningsAsErrors=false >&2
fi
echo "$dir/out/gpuc.dll"
