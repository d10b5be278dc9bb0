#!/usr/bin/env bash
# Publishes a self-contained gpuc for linux-x64 and packs it as artifacts/gpuc-linux-x64.tar.xz, the form
# scripts/gpu-check.sh expects on a GPU machine without .NET (the device tool carries at most 64 MiB).
#   scripts/publish-gpuc.sh            # → artifacts/gpuc-linux-x64.tar.xz
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out="$root/artifacts/publish/gpuc-linux-x64"
rm -rf "$out"
dotnet publish "$root/src/GpuCommons.Cli/GpuCommons.Cli.csproj" -c Release -r linux-x64 --self-contained true \
  -p:PublishSingleFile=true -p:IncludeNativeLibrariesForSelfExtract=true -p:DebugType=none -p:GenerateDocumentationFile=false \
  -m:1 -o "$out"
mkdir -p "$root/artifacts"
tar -C "$out" -cf - . | xz -9 -T1 > "$root/artifacts/gpuc-linux-x64.tar.xz"
ls -l "$root/artifacts/gpuc-linux-x64.tar.xz"
size=$(stat -c %s "$root/artifacts/gpuc-linux-x64.tar.xz")
if [ "$size" -gt $((60 * 1024 * 1024)) ]; then
  echo "warning: $size bytes is close to the device tool's 64 MiB carry limit" >&2
fi
