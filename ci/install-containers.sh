#!/usr/bin/env bash
# What container jobs and notebook sessions need, from Debian packages: podman with runc as its OCI runtime (crun 1.8
# refuses cgroup v1 hybrid hosts), busybox-static (the tests build their small image from it, nothing is pulled from a
# registry), and Jupyter (python3-notebook, python3-ipykernel) for `gpuc session jupyter`. Then it builds the test
# image `localhost/gpuc-busybox:test` once (podman import of a busybox rootfs). Idempotent; needs root only when
# something is missing.
set -euo pipefail
pkgs=(podman runc catatonit busybox-static python3-notebook python3-ipykernel)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  [ "$(id -u)" -eq 0 ] || { echo "install-containers: as root run: apt-get install ${missing[*]}" >&2; exit 1; }
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The test image: a busybox rootfs (sh, id, cat, ls, env…) imported as localhost/gpuc-busybox:test.
if ! podman --runtime runc image exists localhost/gpuc-busybox:test 2>/dev/null; then
  root=$(mktemp -d)
  trap 'rm -rf "$root"' EXIT
  mkdir -p "$root/bin" "$root/tmp" "$root/etc" "$root/proc" "$root/sys" "$root/dev" "$root/work"
  chmod 1777 "$root/tmp"
  cp /bin/busybox "$root/bin/busybox"
  for t in sh id cat ls env echo sleep pwd test true false head wc whoami stat touch; do ln -s busybox "$root/bin/$t"; done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/sh\n' > "$root/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' > "$root/etc/group"
  tar -C "$root" -cf "$root.tar" .
  podman --runtime runc import --change 'ENV PATH=/bin' --change 'CMD ["/bin/sh"]' "$root.tar" localhost/gpuc-busybox:test >/dev/null
  rm -f "$root.tar"
fi
# The same root file system as an OCI bundle for Slurm's own `sbatch --container` (ci/slurm/oci.conf.template):
# /var/lib/gpuc-ci/busybox-bundle/{rootfs,config.json}, readable by every account. GpuCommons writes each job's own
# config.json from it; /etc/gpuc-image says which image a job ran in.
bundle=/var/lib/gpuc-ci/busybox-bundle
if [ ! -f "$bundle/config.json" ] && [ "$(id -u)" -eq 0 ]; then
  rm -rf "$bundle"
  mkdir -p "$bundle/rootfs/bin" "$bundle/rootfs/etc" "$bundle/rootfs/proc" "$bundle/rootfs/sys" "$bundle/rootfs/dev" "$bundle/rootfs/tmp" "$bundle/rootfs/data"
  cp /bin/busybox "$bundle/rootfs/bin/busybox"
  for t in sh id cat ls env echo sleep pwd test true false head wc whoami stat touch; do ln -s busybox "$bundle/rootfs/bin/$t"; done
  echo "gpuc-busybox-bundle" > "$bundle/rootfs/etc/gpuc-image"
  (cd "$bundle" && runc spec --rootless)
  chmod -R a+rX /var/lib/gpuc-ci
fi
echo "podman $(podman --version | awk '{print $3}'), runc $(runc --version | awk 'NR==1{print $3}'), notebook $(/usr/bin/python3 -m notebook --version 2>/dev/null || echo missing)"
