#!/usr/bin/env bash
# Install the Debian 12 packages that building and testing sqlenvfs need,
# only those that are missing. Run as root (or with sudo available).
set -euo pipefail

packages=(
  gcc pkg-config meson ninja-build strace faketime
  libglib2.0-dev libsqlite3-dev libfuse3-dev fuse3 zlib1g-dev libisal-dev libzstd-dev check libpq-dev
  sqlite3 sqlite3-tools python3 postgresql
  clang libclang-rt-14-dev
  libcurl4-openssl-dev libssl-dev
  # the plot of scripts/bench/history.sh
  gnuplot-nox
  # the test S3 server (scripts/s3server.sh) and an independent S3 client
  radosgw ceph-mon ceph-osd s3cmd
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ "${#missing[@]}" -gt 0 ]; then
  echo "deps: installing ${missing[*]}" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
