#!/usr/bin/env bash
# Build the mcpwarden OCI image offline with buildah (`make image`).
#
#   scripts/image.sh [BUILD_DIR] [VERSION]      defaults: build/rel, the Makefile's VERSION
#
# Stages a root filesystem in BUILD_DIR/image/rootfs: mcpwarden and wardenctl (stripped), the
# shared libraries ldd says they load, at the same paths, and the dynamic loader; the CA bundle;
# a minimal /etc (passwd and group with the non-root user warden, uid/gid 65532; nsswitch.conf);
# an empty /tmp. BUILD_DIR/image/state becomes the state directory, owned by warden. Then
# `buildah bud` builds deploy/container/Containerfile FROM scratch on that directory and tags
# localhost/mcpwarden:VERSION and :latest. No registry is contacted.
#
# Environment: IMAGE (default localhost/mcpwarden); TAG_LATEST=0 tags only VERSION; STAGE (the
# staging directory, default BUILD_DIR/image); STORAGE_DRIVER (default vfs: the driver that works
# on hosts like the development VM; set "" to use the host's storage.conf).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$top/build/rel}" && pwd)
version=${2:-$(sed -n 's/^VERSION *:= *//p' "$top/Makefile")}
image=${IMAGE:-localhost/mcpwarden}
driver=${STORAGE_DRIVER-vfs}
export CONTAINERS_CONF=${CONTAINERS_CONF:-$top/deploy/container/containers.conf}

# buildah is needed here only; install it (Debian) when it is missing, like scripts/deps.sh.
if ! command -v buildah >/dev/null; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "image: buildah is missing (apt-get install buildah podman runc, as root)" >&2
		exit 1
	fi
	echo "image: installing buildah podman runc"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		buildah podman runc
fi

bins=("$build/mcpwarden" "$build/wardenctl")
for b in "${bins[@]}"; do
	[ -x "$b" ] || { echo "image: $b is missing (run make first)" >&2; exit 1; }
	# An image of sanitizer builds would need libasan and would not be what users run.
	if ldd "$b" | grep -q 'libasan\|libubsan'; then
		echo "image: $b is a sanitizer build; build the release (make MODE=rel)" >&2
		exit 1
	fi
done

stage=${STAGE:-$build/image}
rm -rf "$stage"
root=$stage/rootfs
mkdir -p "$root/usr/bin" "$root/etc/ssl/certs" "$stage/state"

for b in "${bins[@]}"; do
	strip --strip-unneeded -o "$root/usr/bin/$(basename "$b")" "$b"
done

# Every library ldd resolves (the "=> /path" column) and the loader (a bare path), copied with
# links followed to the very path ldd printed, so the loader finds each under its soname.
ldd "${bins[@]}" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// && $2 ~ /^\(/ { print $1 }' |
	sort -u | while read -r lib; do
		mkdir -p "$root$(dirname "$lib")"
		cp -L "$lib" "$root$lib"
	done

cp -L /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
cat >"$root/etc/passwd" <<'TXT'
root:x:0:0:root:/root:/nonexistent
warden:x:65532:65532:mcpwarden:/var/lib/mcpwarden:/nonexistent
TXT
cat >"$root/etc/group" <<'TXT'
root:x:0:
warden:x:65532:
TXT
# glibc's files and dns lookups are built into libc.so.6; say which to use for upstream names.
printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$root/etc/nsswitch.conf"
mkdir -p "$root/etc/mcpwarden" "$root/tmp"
chmod 1777 "$root/tmp"
chmod 0700 "$stage/state"

revision=$(git -C "$top" rev-parse HEAD 2>/dev/null || echo unknown)
created=$(date -u +%Y-%m-%dT%H:%M:%SZ)
opts=()
[ -n "$driver" ] && opts+=(--storage-driver "$driver")
tags=(-t "$image:$version")
[ "${TAG_LATEST:-1}" = 0 ] || tags+=(-t "$image:latest")
# A rebuild moves the tags; the image they pointed to is then dangling: remove it (vfs keeps
# a full copy of every image).
old=$(buildah "${opts[@]}" images -q --no-trunc "$image:$version" 2>/dev/null || true)
echo "image: building $image:$version from $stage (FROM scratch)"
buildah "${opts[@]}" bud --quiet --layers=false \
	--build-arg VERSION="$version" --build-arg REVISION="$revision" \
	--build-arg CREATED="$created" \
	-f "$top/deploy/container/Containerfile" "${tags[@]}" "$stage" >/dev/null
new=$(buildah "${opts[@]}" images -q --no-trunc "$image:$version")
if [ -n "$old" ] && [ "$old" != "$new" ]; then
	buildah "${opts[@]}" rmi "$old" >/dev/null 2>&1 || true	# still used: keep it
fi

bytes=$(buildah "${opts[@]}" inspect --type image --format '{{.ImageInfo.Size}}' \
	"$image:$version" 2>/dev/null || echo 0)
[ "$bytes" -gt 0 ] 2>/dev/null || bytes=$(du -sb "$stage" | cut -f1)
# What a registry stores and a node pulls: the layers gzip-compressed.
gz=$(tar -C "$stage" -cf - rootfs state | gzip -6 | wc -c)
nlibs=$(find "$root" -name '*.so*' | wc -l)
awk -v n="$image:$version" -v b="$bytes" -v g="$gz" -v l="$nlibs" 'BEGIN {
	printf "image: %s: %.1f MB (%.1f MB compressed), %d shared objects, no shell\n",
		n, b / 1e6, g / 1e6, l }'
