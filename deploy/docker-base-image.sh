#!/usr/bin/env bash
# Makes the base image the Dockerfile starts from, debian:bookworm-slim, when
# the Docker daemon does not have it yet and no registry can be pulled from
# (machines that reach only Debian's archive): a minimal Debian 12 made with
# debootstrap, trimmed as the official slim image is (no manuals, docs or
# locales, no apt lists), and imported under that name. Does nothing when the
# image is there already.
#
#   bash deploy/docker-base-image.sh [MIRROR]   (default http://deb.debian.org/debian)
#
# Needs root and debootstrap (apt-get install debootstrap).
set -euo pipefail

image=debian:bookworm-slim
mirror=${1:-http://deb.debian.org/debian}

if docker image inspect "$image" >/dev/null 2>&1; then
  exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "docker-base-image: $image is missing and debootstrap needs root; run this as root" >&2
  exit 1
fi
if ! command -v debootstrap >/dev/null; then
  echo "docker-base-image: $image is missing and debootstrap is not installed;" \
    "apt-get install debootstrap (or docker pull $image where a registry is reachable)" >&2
  exit 1
fi

rootfs=$(mktemp -d /tmp/fleet-bookworm-rootfs.XXXXXX)
trap 'rm -rf "$rootfs" "$rootfs.log"' EXIT
chmod 0755 "$rootfs"   # it becomes the image's /, which mktemp made 0700
echo "docker-base-image: $image is missing; building it with debootstrap from $mirror" >&2
if ! debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$rootfs.log" 2>&1; then
  echo "docker-base-image: debootstrap failed; its log ($rootfs.log):" >&2
  tail -n 30 "$rootfs.log" >&2
  exit 1
fi
rm -f "$rootfs.log"

# What the official slim image leaves out, and keeps out of later apt-get
# installs: every image layer is a full copy under the vfs storage driver.
cat >"$rootfs/etc/dpkg/dpkg.cfg.d/docker-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/lintian/*
EOF
cat >"$rootfs/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
Acquire::Languages "none";
EOF
find "$rootfs/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete
rm -rf "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/usr/share/lintian/*
find "$rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
rm -rf "$rootfs"/var/cache/apt/* "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/log/*.log \
  "$rootfs"/var/cache/debconf/*-old

tar -C "$rootfs" -c . | docker import \
  --change 'CMD ["bash"]' --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  - "$image" >/dev/null
echo "docker-base-image: imported $image ($(docker image inspect -f '{{.Size}}' "$image" | numfmt --to=iec))" >&2
