#!/usr/bin/env bash
# System packages some tests need beyond Python 3.11 and Java 17, from Debian's archive. Each such test
# skips, and says which package is missing, when it is absent; CI installs them here so it never skips.
#   postgresql  the PostgreSQL server tests/test_dagster_postgres.py starts on 127.0.0.1 (deploy/dagster.yaml)
set -euo pipefail
packages=()
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || packages+=(postgresql)
if [ ${#packages[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "system packages missing (${packages[*]}) and not root: the tests that need them will skip" >&2
  exit 0
fi
echo "installing system packages: ${packages[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# The package's own cluster is never started (policy-rc.d refuses in containers); tests run their own.
apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
