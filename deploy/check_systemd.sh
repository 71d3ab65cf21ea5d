#!/usr/bin/env bash
# Checks deploy/systemd/purserd.service with the machine's systemd (Debian 12:
# systemd 252): `systemd-analyze verify` must print nothing (it exits 0 on an
# unknown key or a value it ignores, so its output is what counts), and
# `systemd-analyze security --offline` must rate the unit's exposure at most
# 2.5 (so that removing the hardening fails).
#
# usage: deploy/check_systemd.sh PATH/TO/purserd [UNIT]
# verify checks that ExecStart's binary exists: the unit is copied to a
# temporary directory with ExecStart pointing at the built purserd. Works
# without systemd as PID 1 (a container): verify reads the files only.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
purserd="${1:?usage: check_systemd.sh PATH/TO/purserd [UNIT]}"
unit="${2:-$here/systemd/purserd.service}"
# exposure x10, as systemd-analyze security --threshold counts it
max_exposure=25

if ! command -v systemd-analyze >/dev/null 2>&1; then
  echo "FAIL: systemd-analyze not installed: run scripts/setup (apt-get install systemd)" >&2
  exit 1
fi
if [[ ! -x "$purserd" ]]; then
  echo "FAIL: $purserd is not an executable purserd" >&2
  exit 1
fi
if [[ ! -f "$unit" ]]; then
  echo "FAIL: no unit file at $unit" >&2
  exit 1
fi
purserd="$(cd "$(dirname "$purserd")" && pwd)/$(basename "$purserd")"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
name="$(basename "$unit")"
grep -q '^ExecStart=/usr/local/bin/purserd ' "$unit" || {
  echo "FAIL: $unit: ExecStart does not start /usr/local/bin/purserd" >&2
  exit 1
}
sed "s#^ExecStart=/usr/local/bin/purserd #ExecStart=$purserd #" "$unit" >"$tmp/$name"

echo "systemd-analyze verify $name (ExecStart=$purserd)"
status=0
# --man=no: no man pages here; --generators=no: no generators without PID 1.
SYSTEMD_LOG_LEVEL=info SYSTEMD_LOG_COLOR=0 \
  systemd-analyze verify --man=no --generators=no "$tmp/$name" >"$tmp/verify.out" 2>&1 || status=$?
if [[ $status -ne 0 || -s "$tmp/verify.out" ]]; then
  sed "s#$tmp/##g" "$tmp/verify.out" >&2
  if grep -qiE 'unknown|failed|ignoring|invalid|not executable|error' "$tmp/verify.out"; then
    echo "FAIL: systemd-analyze verify reported problems in $name (exit $status)" >&2
  else
    echo "FAIL: systemd-analyze verify printed output or exited $status for $name" >&2
  fi
  exit 1
fi
echo "  ok"

echo "systemd-analyze security --offline=true $name (threshold $max_exposure)"
status=0
systemd-analyze security --offline=true --no-pager --threshold="$max_exposure" "$tmp/$name" \
  >"$tmp/security.out" 2>&1 || status=$?
grep 'Overall exposure level' "$tmp/security.out" | sed "s#$tmp/##g" || true
if [[ $status -ne 0 ]]; then
  grep '✗' "$tmp/security.out" >&2 || cat "$tmp/security.out" >&2
  echo "FAIL: $name is exposed above $max_exposure/100 (systemd-analyze security exit $status)" >&2
  exit 1
fi

# The options the deployment relies on must stay (verify accepts their absence).
for required in 'Type=simple' 'StateDirectory=purser' 'ProtectSystem=strict' 'ProtectHome=yes' \
    'NoNewPrivileges=yes' 'PrivateTmp=yes' 'PrivateDevices=yes' 'ProtectKernelTunables=yes' \
    'ProtectKernelModules=yes' 'ProtectKernelLogs=yes' \
    'RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX' 'LockPersonality=yes' \
    'MemoryDenyWriteExecute=yes' 'SystemCallFilter=@system-service' 'LimitNOFILE=65536' \
    'Restart=on-failure' 'KillSignal=SIGTERM' 'TimeoutStopSec=' 'RestartPreventExitStatus=.*\b3\b'; do
  if ! grep -qE "^$required" "$unit"; then
    echo "FAIL: $name lacks $required" >&2
    exit 1
  fi
done
echo "PASS: $name"
