#!/usr/bin/env bash
# Checks the Prometheus alerting rules: syntax and lint (promtool check rules),
# then the unit tests (promtool test rules), which prove each alert fires when
# it should and not otherwise.
#
# usage: deploy/check_prometheus.sh [RULES] [RULES_TEST]
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
rules="${1:-$here/prometheus/rules.yml}"
tests="${2:-$here/prometheus/rules_test.yml}"
promtool="${PROMTOOL:-promtool}"

if ! command -v "$promtool" >/dev/null 2>&1; then
  echo "FAIL: promtool not installed: run scripts/setup (apt-get install prometheus)" >&2
  exit 1
fi

echo "$promtool check rules --lint=all --lint-fatal $rules"
"$promtool" check rules --lint=all --lint-fatal "$rules"
# promtool test rules resolves rule_files relative to the test file.
echo "$promtool test rules $tests"
"$promtool" test rules "$tests"
echo "PASS: Prometheus rules"
