#!/usr/bin/env bash
# Installs what the tests and benchmarks need beside Go: memcached (the
# reference server for differential tests and benchmarks) and
# libmemcached-tools (memccapable). Safe to run repeatedly.
set -euo pipefail

need=()
command -v memcached >/dev/null 2>&1 || need+=(memcached)
command -v memccapable >/dev/null 2>&1 || need+=(libmemcached-tools)
if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-deps: apt-get not found; install ${need[*]} by hand (tests that need them will skip)" >&2
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "install-deps: not root and no sudo; install ${need[*]} by hand (tests that need them will skip)" >&2
    exit 0
  fi
fi
echo "install-deps: installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq "${need[@]}" >/dev/null
# The Debian package starts a system memcached on 11211 where systemd runs;
# sonae's default port is the same, so stop it.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet memcached 2>/dev/null; then
  $SUDO systemctl stop memcached || true
  $SUDO systemctl disable memcached >/dev/null 2>&1 || true
fi
