#!/usr/bin/env bash
# Set up everything hdc needs on a fresh Debian 12 machine: system packages (as root) and the
# locked Python environment in .venv. Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  python3 python3-venv ca-certificates git make
  snmpd snmp                                   # a real SNMP agent and client tools
  prometheus prometheus-alertmanager prometheus-snmp-exporter   # promtool, Alertmanager, the bench anchor
  postgresql                                   # the archive catalog in production
  chromium                                     # NOC page tests (headless)
  debootstrap systemd-container iproute2 nftables   # throw-away Debian hosts for the Ansible tests
  openssl
)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "setup: missing system packages: ${missing[*]} (run as root, or install them with apt-get)" >&2
    exit 1
  fi
  # Packages must not start their services (Prometheus, PostgreSQL, snmpd…): hdc starts its own.
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  fi
  echo "setup: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# uv, in a small tools venv of its own (Debian's python refuses system-wide pip installs).
UV=uv
if ! command -v uv >/dev/null 2>&1; then
  if [[ ! -x .tools/bin/uv ]]; then
    /usr/bin/python3 -m venv .tools
    .tools/bin/pip install -q 'uv>=0.5,<1'
  fi
  UV=.tools/bin/uv
fi
# The venv must be built on Debian's /usr/bin/python3: snmpsim drops root to 'nobody' and must
# still import its modules from there.
"$UV" sync --frozen --python /usr/bin/python3 --quiet
echo "setup: ready (.venv)"
