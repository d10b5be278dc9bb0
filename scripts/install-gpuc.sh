#!/usr/bin/env bash
# Builds gpuc from this checkout and puts it on the PATH:
#   as root:        /usr/local/lib/gpuc (the program) and /usr/local/bin/gpuc, for every account on the machine;
#   as a user:      ~/.local/lib/gpuc and ~/.local/bin/gpuc (Debian's ~/.profile puts ~/.local/bin on the PATH).
# Both also get ~/.local/bin/gpuc, the path the README's first command uses, so it works before a new login.
#   scripts/install-gpuc.sh                 # build (Release) and install
#   GPUC_PREFIX=/opt/gpuc scripts/install-gpuc.sh   # PREFIX/lib/gpuc and PREFIX/bin/gpuc instead
# Running it again replaces the installed gpuc (a running `gpuc serve` keeps the copy it started with).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dotnet=$(command -v dotnet || true)
if [ -z "$dotnet" ]; then
  echo "install-gpuc: dotnet is not on the PATH; install the .NET 10 SDK first (https://dot.net)" >&2
  exit 1
fi
dotnet=$(readlink -f "$dotnet")

if [ -n "${GPUC_PREFIX:-}" ]; then
  prefix=$GPUC_PREFIX
elif [ "$(id -u)" -eq 0 ]; then
  prefix=/usr/local
else
  prefix=$HOME/.local
fi
lib=$prefix/lib/gpuc
bin=$prefix/bin

# Publish beside the old copy, then swap, so a failed build leaves the installed gpuc as it was.
umask 022
mkdir -p "$prefix/lib" "$bin"
stage=$(mktemp -d "$prefix/lib/.gpuc-new.XXXXXX")
trap 'rm -rf "$stage"' EXIT
echo "install-gpuc: building gpuc (Release) into $lib …" >&2
"$dotnet" publish "$root/src/GpuCommons.Cli/GpuCommons.Cli.csproj" -c Release -o "$stage" -p:GenerateDocumentationFile=false -nologo -v quiet >&2
chmod -R a+rX "$stage"
if [ -d "$lib" ]; then
  mv "$lib" "$lib.old.$$"
fi
mv "$stage" "$lib"
rm -rf "$lib.old.$$"
trap - EXIT

# A small launcher rather than a link to the apphost: it finds this dotnet wherever .NET is installed.
launcher=$(mktemp "$bin/.gpuc.XXXXXX")
cat > "$launcher" <<SH
#!/bin/sh
# gpuc, installed by $root/scripts/install-gpuc.sh
exec "$dotnet" "$lib/gpuc.dll" "\$@"
SH
chmod 755 "$launcher"
mv -f "$launcher" "$bin/gpuc"

# ~/.local/bin/gpuc as well, so the README's first command finds it before a new login puts ~/.local/bin on the PATH.
if [ "$bin" != "$HOME/.local/bin" ] && [ -z "${GPUC_PREFIX:-}" ]; then
  mkdir -p "$HOME/.local/bin"
  ln -sf "$bin/gpuc" "$HOME/.local/bin/gpuc"
fi

echo "install-gpuc: installed $bin/gpuc ($("$bin/gpuc" --version 2>/dev/null || echo '?'))" >&2
case ":$PATH:" in
  *":$bin:"*) ;;
  *) echo "install-gpuc: $bin is not on your PATH here; run: export PATH=\"$bin:\$PATH\"" >&2 ;;
esac
