#!/usr/bin/env bash
# The test command of the README (`npm test`): installs what is missing, starts the local stack
# once for the whole run (or reuses a running one), runs every mocha suite, stops what it started.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh

started_stack=0
if ! node bin/tfos.js stack status >/dev/null 2>&1; then
  node bin/tfos.js stack up >&2
  started_stack=1
fi
stop_stack() {
  if [ "$started_stack" = 1 ]; then node bin/tfos.js stack down >&2 || true; fi
}
trap stop_stack EXIT

# Point the integration suites at the shared stack instead of each starting its own services.
eval "$(node -e '
  const s = JSON.parse(require("child_process").execFileSync("node", ["bin/tfos.js", "stack", "status", "--json"]).toString());
  console.log(`export TFOS_TEST_WEBHDFS=${s.hdfs.webhdfs} TFOS_TEST_DEFAULT_FS=${s.hdfs.defaultFS} TFOS_TEST_LIVY=${s.livy.url} TFOS_TEST_SPARK_MASTER=${s.spark.master} TFOS_TEST_LIVY_SESSIONS=${s.livy.sessions ? 1 : 0}`);
')"

# The suites are named here, not in .mocharc.json: there they would be added to any file given on
# the command line, so `npx mocha dist/test/unit/one.test.js` would run everything.
if [ "$#" -eq 0 ]; then set -- 'dist/test/unit/**/*.test.js' 'dist/test/integration/**/*.test.js'; fi
npx --no-install mocha "$@"
