/**
 * mocha's spec reporter plus one closing line in the plain "N passed, N failed, N skipped" form
 * that CI systems read, after mocha's own "N passing" summary.
 */
import Mocha from 'mocha';

class SummaryReporter extends Mocha.reporters.Spec {
  constructor(runner: Mocha.Runner, options?: Mocha.MochaOptions) {
    super(runner, options);
    runner.once(Mocha.Runner.constants.EVENT_RUN_END, () => {
      const s = runner.stats ?? { passes: 0, failures: 0, pending: 0 };
      // Registered after the Spec reporter's epilogue, so this prints right below it.
      console.log(`mocha: ${s.passes} passed, ${s.failures} failed, ${s.pending} skipped`);
    });
  }
}

export = SummaryReporter;
