#!/usr/bin/env bash
# What the test suite needs from the machine beyond .venv, made present before `make test`:
# - PostgreSQL (127.0.0.1:5432) and Redis (127.0.0.1:6379), started if they are installed but
#   not running;
# - Chromium (tests/e2e/test_drift_report_browser.py renders the drift report headless) and
#   Prometheus (tests/e2e/test_prometheus.py scrapes a cluster), installed with apt-get.
# Needs root for apt-get; otherwise it prints one line naming the packages to install, and
# the tests that need them fail saying what is missing.
set -uo pipefail

if ! (exec 3<>/dev/tcp/127.0.0.1/6379) 2>/dev/null && command -v redis-server >/dev/null; then
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/test.log >/dev/null 2>&1 || true
fi
if ! (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null && command -v pg_ctlcluster >/dev/null; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
fi

missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
  echo "test-deps: installing ${missing[*]} (apt-get)"
  { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive \
      apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null; } \
    || echo "test-deps: apt-get could not install ${missing[*]}; the tests that need them will fail"
else
  echo "test-deps: install ${missing[*]} (Debian: sudo apt-get install ${missing[*]}); the tests that need them fail without"
fi
exit 0
