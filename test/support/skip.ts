/**
 * Skips are for hardware or privileges that are truly absent here, and each one says why: the
 * reason is printed under the test's title as it is skipped.
 */
import type Mocha from 'mocha';

/** Skips the running test or hook, printing why. */
export function skipBecause(ctx: Mocha.Context, why: string): never {
  process.stdout.write(`      skipped: ${why}\n`);
  return ctx.skip();
}
