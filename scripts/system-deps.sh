#!/usr/bin/env bash
# Installs what the test suite needs from Debian's packages when it is missing, and starts the
# machine's PostgreSQL when it is not running. Idempotent; used by `make test` (and so by CI).
set -euo pipefail

need=()
command -v openssl >/dev/null || need+=(openssl)
command -v softhsm2-util >/dev/null || need+=(softhsm2)
command -v pkcs11-tool >/dev/null || need+=(opensc)
command -v nginx >/dev/null || need+=(nginx-light)
command -v lego >/dev/null || need+=(lego)
command -v caddy >/dev/null || need+=(caddy)  # a stock ACME client that sends SAN-only CSRs (tests)
command -v pebble >/dev/null || need+=(pebble)
command -v wrk >/dev/null || need+=(wrk)
command -v curl >/dev/null || need+=(curl)
command -v ocsptool >/dev/null || need+=(gnutls-bin)  # GnuTLS ocsptool/certtool check our OCSP
command -v psql >/dev/null || need+=(postgresql)
command -v systemd-analyze >/dev/null || need+=(systemd)  # tests/test_deploy.py: verify the unit
command -v chromium >/dev/null || need+=(chromium)  # tests/test_docs_page.py: /docs offline
# tests/test_container.py: build and run deploy/Containerfile (runc: see CONTAINERS_CONF there)
command -v podman >/dev/null || need+=(podman)
command -v runc >/dev/null || need+=(runc)
command -v debootstrap >/dev/null || need+=(debootstrap)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  # Debian's caddy package enables a web server on ports 80/443; the tests run their own
  if [[ " ${need[*]} " == *" caddy "* ]] && command -v systemctl >/dev/null; then
    systemctl disable --now caddy.service >/dev/null 2>&1 || true
  fi
fi

if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  echo "starting PostgreSQL" >&2
  cluster=$(ls /etc/postgresql 2>/dev/null | head -n1)
  pg_ctlcluster --skip-systemctl-redirect "$cluster" main start || true
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi
pg_isready -h 127.0.0.1 -p 5432 >&2 || { echo "PostgreSQL is not reachable on 127.0.0.1:5432" >&2; exit 1; }
