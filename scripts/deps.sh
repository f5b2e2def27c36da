#!/usr/bin/env bash
# Install what mcpwarden needs on Debian 12, idempotently: the Debian build packages and the
# pinned npm test tools (tests/package.json + lockfile). Safe to run again; does nothing when
# everything is present.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)

pkgs=(make gcc clang llvm pkg-config libbpf-dev libelf-dev zlib1g-dev bpftool libevent-dev
      libcurl4-openssl-dev libcjson-dev libsqlite3-dev libssl-dev libcunit1-dev libpcre2-dev libhiredis-dev nodejs npm
      redis-server redis-tools                         # counters-redis test and bench: a real Redis
      libpq-dev postgresql                             # logs.postgres; the fleet-logs test's server (and psql)
      iproute2 curl wrk nginx valgrind                 # make bench (valgrind: instructions per call)
      openssl                                          # node-agent test: the API server's certificate
      sqlite3 e2fsprogs                                # tests: read the stores, tamper with logs.db; an ext4 image
      xxd                                              # the dashboard's assets, embedded at build
      chromium                                         # the dashboard test (headless)
      podman buildah runc catatonit busybox-static)   # make image; the podman pod suite
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
# npm may come from outside Debian (a newer one on PATH); accept it when present.
if [ ${#missing[@]} -gt 0 ] && command -v npm >/dev/null && command -v node >/dev/null; then
	kept=()
	for p in "${missing[@]}"; do
		case "$p" in nodejs|npm) ;; *) kept+=("$p") ;; esac
	done
	missing=("${kept[@]+"${kept[@]}"}")
fi
if [ ${#missing[@]} -gt 0 ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "deps: missing Debian packages: ${missing[*]} (run as root to install)" >&2
		exit 1
	fi
	echo "deps: installing ${missing[*]}"
	# nginx (for make bench) is a service package: it must not start a system nginx on port
	# 80. A policy-rc.d that answers 101 keeps invoke-rc.d from starting anything during the
	# install; one that is already there (containers have one) is left as it is.
	rcd=/usr/sbin/policy-rc.d
	own_rcd=
	if [ ! -e "$rcd" ]; then
		printf '#!/bin/sh\n# mcpwarden deps.sh: no service starts during this install\nexit 101\n' >"$rcd"
		chmod 755 "$rcd"
		own_rcd=1
		trap 'rm -f "$rcd"' EXIT
	fi
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
	if [ -n "$own_rcd" ]; then rm -f "$rcd"; trap - EXIT; fi
	# Under systemd the unit is still enabled for the next boot: the benchmark starts its own
	# nginx, so the system one stays off.
	if [ -d /run/systemd/system ] && systemctl is-enabled -q nginx 2>/dev/null; then
		systemctl disable --now nginx >/dev/null 2>&1 || true
	fi
fi

cd "$top/tests"
if [ ! -x node_modules/node/bin/node ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
	echo "deps: installing npm test tools (tests/package-lock.json)"
	npm ci --no-audit --no-fund --loglevel=error
fi
