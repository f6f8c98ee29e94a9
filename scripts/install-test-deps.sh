#!/usr/bin/env bash
# What the whole test suite (npm run test:all) needs beyond npm packages, on
# Debian/Ubuntu as root: the three fronts, the reference SCGI server, and the
# Rust tools (stable for the addon, clippy and rustfmt; nightly + cargo-fuzz for
# the fuzz targets). Installs only what is missing. Used by the README's test
# command and by .ci/run.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

# Rust (rustup puts cargo in ~/.cargo/bin).
if ! command -v cargo >/dev/null 2>&1 && [ -f "$HOME/.cargo/env" ]; then . "$HOME/.cargo/env"; fi
command -v cargo >/dev/null || { echo "cargo is required (the native parser and transport are tested): https://rustup.rs"; exit 1; }
# Coverage-guided fuzzing of the parser (scripts/fuzz.mjs) needs the nightly
# toolchain and cargo-fuzz, from crates.io, pinned.
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
cargo fuzz --version >/dev/null 2>&1 || cargo install cargo-fuzz --version 0.13.2 --locked

# The fronts the end-to-end tests drive (Debian packages).
missing=()
for pkg in nginx apache2 lighttpd; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# The packages start system services on port 80; the tests start their own.
for svc in nginx apache2 lighttpd; do service "$svc" stop >/dev/null 2>&1 || true; done

# The reference SCGI server (Neil Schemenauer's, from PyPI) for the client interop test.
python3 -c 'import scgi.scgi_server' 2>/dev/null || python3 -m pip install --quiet --disable-pip-version-check scgi==2.2
# Python's Prometheus client, whose text and OpenMetrics parsers read the status endpoint's /metrics in the tests.
python3 -c 'import prometheus_client' 2>/dev/null || python3 -m pip install --quiet --disable-pip-version-check prometheus_client==0.26.0
