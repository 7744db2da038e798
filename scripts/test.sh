#!/usr/bin/env bash
# The test command of the README (`npm test`): installs what is missing, starts the local stack
# when none runs (and stops it again at the end), refuses to test against a broken one, then runs
# every mocha suite (or the files given as arguments).
#
# Fail closed: the integration suites are promised the stack through TFOS_TEST_*; if the stack's
# status cannot be read or a service is unhealthy, the run stops here naming the service instead of
# letting suites skip.
set -euo pipefail
cd "$(dirname "$0")/.."
# --notebook: Jupyter and the tslab kernel too, for the notebook suite.
bash scripts/bootstrap.sh --notebook
# Lint first: a style or type-rule break fails in seconds, not after the suites.
bash scripts/lint.sh

status="$(node bin/tfos.js stack status --json || true)"
started_stack=0
if [ "$status" = "null" ]; then
  node bin/tfos.js stack up >&2
  started_stack=1
fi
stop_stack() {
  if [ "$started_stack" = 1 ]; then node bin/tfos.js stack down >&2 || true; fi
}
trap stop_stack EXIT

# Exits non-zero, naming the unhealthy service, when the stack is not fit to test against.
exports="$(node dist/test/support/stack.js)"
eval "$exports"

# The suites are named here, not in .mocharc.json: there they would be added to any file given on
# the command line, so `npx mocha dist/test/unit/one.test.js` would run everything.
full_run=0
if [ "$#" -eq 0 ]; then
  full_run=1
  set -- 'dist/test/unit/**/*.test.js' 'dist/test/integration/**/*.test.js'
fi
# Each mocha run appends its counts here; the last line of `npm test` is their total.
TFOS_TEST_TALLY="$(mktemp)"
export TFOS_TEST_TALLY
print_total() {
  node -e '
    const rows = require("fs").readFileSync(process.argv[1], "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l));
    const t = rows.reduce((a, r) => ({ passed: a.passed + r.passed, failed: a.failed + r.failed, skipped: a.skipped + r.skipped }), { passed: 0, failed: 0, skipped: 0 });
    if (rows.length > 1) console.log(`total: ${t.passed} passed, ${t.failed} failed, ${t.skipped} skipped`);' "$TFOS_TEST_TALLY" || true
  rm -f "$TFOS_TEST_TALLY"
}
trap 'print_total; stop_stack' EXIT
npx --no-install mocha "$@"

# Beyond one machine (test/multihost): one `tfos stack up --hosts 3` (network namespaces, private
# TFOS_HOME) shared by every suite of the group, started and removed by its root hooks; the suites
# skip where namespaces cannot be made (not root). Last, with the loopback stack stopped first, so
# their JVMs never compete for the cores. TFOS_TEST_MULTIHOST=0 leaves the group out.
if [ "$full_run" = 1 ] && [ "${TFOS_TEST_MULTIHOST:-1}" != 0 ]; then
  stop_stack
  started_stack=0
  npx --no-install mocha --config .mocharc.multihost.json 'dist/test/multihost/**/*.test.js'
fi
