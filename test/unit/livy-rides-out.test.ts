/**
 * The Livy route rides out Livy: while Livy is unreachable, or restarted and no longer knows the
 * batch or session, a cluster whose launcher still reaches the driver keeps running; only when
 * the launcher is silent too does the route report the application gone, saying both.
 */
import { expect } from 'chai';
import { followThroughLivy, LAUNCHER_SILENCE_MS } from '../../lib/driver/routes/livy-route';
import { LivyConnectionError, LivyHttpError } from '../../lib/io/livy-client';
import type { AppExit } from '../../lib/driver/routes/route';

const gone = () => new LivyHttpError('GET', 'http://livy/batches/7/state', 404, 'Batch 7 not found');
const down = () => new LivyConnectionError('GET', 'http://livy/batches/7/state', 'ECONNREFUSED', '');

/** A probe that fails with `errors` in turn, then reports `exit`. */
function probeSequence(errors: Array<() => Error>, exit: AppExit): () => Promise<AppExit | undefined> {
  let i = 0;
  return async () => {
    if (i < errors.length) throw errors[i++]();
    return exit;
  };
}

describe('Livy route: following the application when Livy cannot tell', () => {
  const done: AppExit = { ok: true, detail: 'Livy batch 7 ended in state success', logTail: '' };

  it('a Livy restart (unreachable, then the batch forgotten) does not end a cluster whose launcher talks to the driver', async () => {
    const exit = await followThroughLivy(
      'Livy batch 7',
      { launcherLastSeen: () => Date.now() },
      () => false,
      probeSequence([down, down, gone, gone], done),
      5,
    );
    expect(exit).to.equal(done);
  });

  it('Livy busy before the launcher first spoke is waited out', async () => {
    const exit = await followThroughLivy('Livy batch 7', { launcherLastSeen: () => 0 }, () => false, probeSequence([down, down], done), 5);
    expect(exit).to.equal(done);
  });

  it('Livy gone and the launcher silent: the application is reported gone, naming both', async () => {
    const exit = await followThroughLivy(
      'Livy batch 7',
      { launcherLastSeen: () => Date.now() - LAUNCHER_SILENCE_MS - 5000 },
      () => false,
      probeSequence([gone], done),
      5,
    );
    expect(exit.ok).to.equal(false);
    expect(exit.detail).to.match(
      /^Livy batch 7: Livy no longer knows it \(restarted\?\) \(.*404.*\) and the launcher has not reached the driver for \d+ s$/,
    );
  });

  it('Livy restarted after the launcher reported its cluster finished: the application ended as reported, at once', async () => {
    const finished = await followThroughLivy(
      'Livy batch 7',
      { launcherLastSeen: () => Date.now(), launcherEnded: () => 'finished' },
      () => false,
      probeSequence([gone, gone, gone], done),
      5,
    );
    expect(finished.ok).to.equal(true);
    expect(finished.detail).to.match(
      /^Livy batch 7: Livy no longer knows it \(restarted\?\), after the launcher reported its cluster finished$/,
    );
    const failed = await followThroughLivy(
      'Livy batch 7',
      { launcherLastSeen: () => Date.now(), launcherEnded: () => 'failed' },
      () => false,
      probeSequence([down], done),
      5,
    );
    expect(failed.ok).to.equal(false);
  });

  it('a batch Livy never heard of, before the launcher spoke, is an error at once', async () => {
    const exit = await followThroughLivy('Livy batch 7', { launcherLastSeen: () => 0 }, () => false, probeSequence([gone], done), 5);
    expect(exit.detail).to.match(/and the launcher never reached the driver/);
  });
});
