#!/bin/sh
# System packages the tests use: a real browser, a real Prometheus, a real Kafka client, a real
# PostgreSQL server (the record store's production database; tests start their own).
# Installs only what is missing (Debian; needs root or passwordless sudo). Idempotent.
set -eu
need=""
command -v chromium >/dev/null 2>&1 || need="$need chromium"
command -v prometheus >/dev/null 2>&1 || need="$need prometheus"
command -v promtool >/dev/null 2>&1 || need="$need prometheus"
command -v kcat >/dev/null 2>&1 || need="$need kcat"
command -v pg_ctl >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 \
  || need="$need postgresql"
[ -z "$need" ] && exit 0
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo -n"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $need >/dev/null
