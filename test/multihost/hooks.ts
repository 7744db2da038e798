/**
 * Root hooks of the multi-host group (.mocharc.multihost.json): one `tfos stack up --hosts 3` for
 * every suite of the group, removed after the last one — and then nothing may be left: no
 * namespace, no link, no process of the stack.
 */
import { runAllowingFailure } from '../../lib/platform/exec';
import { multiHostStack, networkLeftovers, startMultiHostStack, stopMultiHostStack } from '../support/multihost';

export const mochaHooks = {
  async beforeAll(this: Mocha.Context) {
    this.timeout(600_000);
    await startMultiHostStack();
  },
  async afterAll(this: Mocha.Context) {
    this.timeout(300_000);
    const s = multiHostStack();
    if (!s || process.env.TFOS_TEST_MULTIHOST_HOME) return;
    await stopMultiHostStack();
    const left = await networkLeftovers(s.status.network!.id);
    const procs = await runAllowingFailure('pgrep', ['-f', s.home], { timeoutMs: 10_000 });
    const pids = procs.stdout.split('\n').filter(Boolean);
    if (left.length || pids.length) {
      throw new Error(`the multi-host stack left things behind: ${[...left, ...pids.map((p) => `pid ${p}`)].join(', ')}`);
    }
  },
};
