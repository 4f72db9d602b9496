#!/usr/bin/env bash
# Install the Debian packages that are missing (as root, or through sudo).
#
#   scripts/ensure-apt.sh PKG...                        these packages
#   scripts/ensure-apt.sh -f scripts/os-packages.txt    every package of a list (one per line,
#                                                       `# why` comments; see scripts/os_packages.py)
#
# On a machine without apt (not Debian/Ubuntu) it only says what it would have installed.
set -euo pipefail
pkgs=()
while [ $# -gt 0 ]; do
  if [ "$1" = -f ]; then
    [ -r "${2:-}" ] || { echo "[apt] error: cannot read package list '${2:-}'" >&2; exit 2; }
    mapfile -t -O "${#pkgs[@]}" pkgs < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' -e '/^$/d' "$2")
    shift 2
  else
    pkgs+=("$1")
    shift
  fi
done
[ ${#pkgs[@]} -eq 0 ] && exit 0

if ! command -v dpkg-query >/dev/null || ! command -v apt-get >/dev/null; then
  echo "[apt] not a Debian/Ubuntu machine: make sure the equivalents of these are installed: ${pkgs[*]}" >&2
  exit 0
fi

installed=$(dpkg-query -W -f='${db:Status-Abbrev} ${Package}\n' "${pkgs[@]}" 2>/dev/null |
  awk '$1 == "ii" { print $2 }' || true)
missing=()
for p in "${pkgs[@]}"; do
  grep -qxF -- "$p" <<<"$installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=()
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null || {
    echo "[apt] error: need root or sudo to install: ${missing[*]}" >&2
    exit 1
  }
  sudo=(sudo)
fi
echo "[apt] installing: ${missing[*]}" >&2
# The project runs PostgreSQL, RabbitMQ and Prometheus privately (scripts/services.sh, the tests):
# their Debian packages must not start system-wide daemons on 5432/5672/9090 as a side effect of
# `make install`. policy-rc.d (Debian's switch for exactly this; deb-systemd-invoke honours it)
# refuses every service start during this one apt transaction, unless the machine has its own.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
  "${sudo[@]}" sh -c "printf '#!/bin/sh\n# scripts/ensure-apt.sh: no daemon starts during its install\nexit 101\n' > $policy && chmod 755 $policy"
  trap '"${sudo[@]}" rm -f "$policy"' EXIT
fi
"${sudo[@]}" apt-get -o DPkg::Lock::Timeout=300 update -qq
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq \
  --no-install-recommends \
  "${missing[@]}" >/dev/null
