/**
 * mocha's spec reporter plus one closing line in the plain "N passed, N failed, N skipped" form
 * that CI systems read, after mocha's own "N passing" summary. When TFOS_TEST_TALLY names a file,
 * the counts are also appended there as one JSON line, so scripts/test.sh can print one total for
 * the several mocha runs of `npm test`.
 */
import * as fs from 'node:fs';
import Mocha from 'mocha';

class SummaryReporter extends Mocha.reporters.Spec {
  constructor(runner: Mocha.Runner, options?: Mocha.MochaOptions) {
    super(runner, options);
    runner.once(Mocha.Runner.constants.EVENT_RUN_END, () => {
      const s = runner.stats ?? { passes: 0, failures: 0, pending: 0 };
      // Registered after the Spec reporter's epilogue, so this prints right below it.
      console.log(`mocha: ${s.passes} passed, ${s.failures} failed, ${s.pending} skipped`);
      const tally = process.env.TFOS_TEST_TALLY;
      if (tally) fs.appendFileSync(tally, `${JSON.stringify({ passed: s.passes, failed: s.failures, skipped: s.pending })}\n`);
    });
  }
}

export = SummaryReporter;
