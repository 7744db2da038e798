/**
 * Start-up and feed-start phases (lib/driver/phases.ts): placed on the driver's clock from ages
 * measured on the node's own host, never out of order, summarized by the last node to get there.
 */
import { expect } from 'chai';
import { FEED_PHASES, formatPhases, PhaseLog, STARTUP_PHASES } from '../../lib/driver/phases';
import { startupAges } from '../../lib/node/trainer-main';

describe('start-up phases (PhaseLog)', () => {
  it('places a phase reported as "N ms ago" back from the moment the driver hears of it', () => {
    const log = new PhaseLog(1_000);
    const ev = log.mark('trainer-started', { agoMs: 300, nodeIndex: 2, now: 5_000 });
    expect(ev).to.deep.equal({ phase: 'trainer-started', at: 4_700, seconds: 3.7, nodeIndex: 2 });
  });

  it('never places a phase before its floor (a Python daemon reused from an earlier cluster)', () => {
    const log = new PhaseLog(0);
    log.mark('executors-granted', { now: 2_000 });
    expect(log.latestStartup()).to.equal(2_000);
    expect(log.mark('python-worker', { agoMs: 60_000, nodeIndex: 0, now: 3_000, notBefore: log.latestStartup() }).seconds).to.equal(2);
  });

  it('summarizes per-node phases by the last node (the critical path) and the first', () => {
    const log = new PhaseLog(0);
    log.mark('spark-started', { now: 1_000 });
    log.mark('registered', { nodeIndex: 0, now: 4_000 });
    log.mark('registered', { nodeIndex: 1, now: 6_000 });
    log.mark('reserved', { now: 6_000 });
    expect(log.startup()).to.deep.equal([
      { phase: 'spark-started', seconds: 1 },
      { phase: 'registered', seconds: 6, firstSeconds: 4 },
      { phase: 'reserved', seconds: 6 },
    ]);
    expect(formatPhases(log.startup())).to.equal('Spark app 1.0 s · registered 6.0 s · reserved 6.0 s');
  });

  it('times each feed from its own request, apart from other feeds', () => {
    const log = new PhaseLog(0);
    log.mark('feed-requested', { feedId: 'a', now: 10_000 });
    log.mark('feed-requested', { feedId: 'b', now: 20_000 });
    log.mark('feed-opened', { feedId: 'a', now: 10_250 });
    log.mark('first-batch', { feedId: 'b', nodeIndex: 1, now: 20_800 });
    expect(log.feed('a')).to.deep.equal([
      { phase: 'feed-requested', seconds: 0 },
      { phase: 'feed-opened', seconds: 0.25 },
    ]);
    expect(log.feed('b').map((r) => [r.phase, r.seconds])).to.deep.equal([
      ['feed-requested', 0],
      ['first-batch', 0.8],
    ]);
    expect(log.startup(), 'feed phases stay out of the start-up').to.deep.equal([]);
  });

  it('lists the phases in the order a run passes them', () => {
    expect(STARTUP_PHASES[0]).to.equal('run');
    expect(STARTUP_PHASES.at(-1)).to.equal('reserved');
    expect(FEED_PHASES[0]).to.equal('feed-requested');
    expect(FEED_PHASES.at(-1)).to.equal('first-batch');
  });
});

describe('a trainer reports its start-up as ages when it registers', () => {
  it('from the node task’s timestamps on the same host clock, and its own process start', () => {
    const now = performance.timeOrigin + 5_000;
    const ages = startupAges({ TFOS_PYTHON_STARTED_MS: String(now - 900), TFOS_TASK_STARTED_MS: String(now - 400) }, now - 100, now);
    expect(ages).to.deep.equal({ pythonWorker: 900, task: 400, trainer: 5_000, loaded: 100 });
  });

  it('leaves out what a trainer started by hand (no node task) cannot know', () => {
    const ages = startupAges({ TFOS_TASK_STARTED_MS: 'soon' }, Date.now());
    expect(ages.pythonWorker).to.equal(undefined);
    expect(ages.task).to.equal(undefined);
    expect(ages.trainer).to.be.a('number');
  });
});
