import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { PROTOCOL_VERSION } from '../../lib/protocol/control';
import {
  JobSpec,
  LauncherCommand,
  parseLauncherEvent,
  ProtocolError,
  protocolSchema,
  PROTOCOL_SCHEMA_PATH,
} from '../../lib/protocol/launcher';

const SPARK_JOBS = path.resolve(__dirname, '../../../spark-jobs');

/** Runs the launcher's own check on a message (python3, standard library only); '' when it passes. */
function launcherCheck(fn: 'check_job' | 'check_command', msg: unknown): string {
  const script = [
    'import json, sys',
    `sys.path.insert(0, ${JSON.stringify(SPARK_JOBS)})`,
    'import tfos_launcher as L',
    `schema = json.load(open(${JSON.stringify(PROTOCOL_SCHEMA_PATH)}))`,
    'try:',
    `    L.${fn}(schema, json.loads(sys.stdin.read()))`,
    '    print("")',
    'except L.ProtocolError as err:',
    '    print(err)',
  ].join('\n');
  return execFileSync('python3', ['-c', script], { input: JSON.stringify(msg) })
    .toString()
    .trim();
}

const job: JobSpec = {
  protocol: PROTOCOL_VERSION,
  clusterId: 'abc',
  appName: 'app',
  clusterSize: 2,
  roles: [
    { job: 'chief', taskIndex: 0 },
    { job: 'worker', taskIndex: 0 },
  ],
  trainerCommand: ['node', 'trainer-main.js'],
  trainerEnv: { TFOS_CLUSTER_ID: 'abc' },
  gpusPerNode: 0,
  reservationTimeoutSec: 60,
};

const feed: LauncherCommand = {
  type: 'feed',
  feed: { feedId: 'f1', kind: 'train', path: 'hdfs:///data/train', targets: [['127.0.0.1', 4000]], epochs: 2 },
};

describe('launcher protocol: one schema (spark-jobs/protocol.json) for driver and launcher', () => {
  it('the schema speaks the driver’s protocol version', () => {
    expect(protocolSchema().version).to.equal(PROTOCOL_VERSION);
  });

  describe('the Python launcher checks what it reads', () => {
    it('accepts the job spec and commands the driver sends', () => {
      expect(launcherCheck('check_job', job)).to.equal('');
      expect(launcherCheck('check_job', { ...job, feedSlots: 1 })).to.equal('');
      expect(launcherCheck('check_job', { ...job, driverSilenceSec: 600 })).to.equal('');
      expect(launcherCheck('check_command', feed)).to.equal('');
      expect(launcherCheck('check_command', { type: 'shutdown', reason: 'cluster failed' })).to.equal('');
    });

    it('names a missing, mistyped or unknown field of the job spec', () => {
      const { clusterSize: _, ...noSize } = job;
      expect(launcherCheck('check_job', noSize)).to.equal("job spec: missing field 'clusterSize'");
      expect(launcherCheck('check_job', { ...job, gpusPerNode: '1' })).to.equal("job spec: field 'gpusPerNode' must be int, got '1'");
      expect(launcherCheck('check_job', { ...job, extra: 1 })).to.equal("job spec: unknown field 'extra'");
    });

    it('refuses a driver of another protocol version, saying so', () => {
      expect(launcherCheck('check_job', { ...job, protocol: PROTOCOL_VERSION + 1 })).to.match(
        /the driver speaks protocol 2, this launcher 1/,
      );
    });

    it('names an unknown command and a bad field inside a feed', () => {
      expect(launcherCheck('check_command', { type: 'cancel-feed', feedId: 'f1' })).to.match(
        /^command: unknown type 'cancel-feed' \(known: shutdown, feed\)/,
      );
      const { epochs: _, ...noEpochs } = (feed as Extract<LauncherCommand, { type: 'feed' }>).feed;
      expect(launcherCheck('check_command', { type: 'feed', feed: noEpochs })).to.equal("feed command's feed: missing field 'epochs'");
    });
  });

  describe('the driver checks every launcher event', () => {
    it('accepts each event the launcher sends (null for an optional field too)', () => {
      const events = [
        { type: 'spark-started', appId: 'app-1', master: 'local[2]', uiUrl: null, defaultFS: 'file:///' },
        { type: 'nodes-finished', results: [{ nodeIndex: 0, exitCode: 0 }] },
        { type: 'failed', error: 'boom' },
        { type: 'feed-epoch', feedId: 'f1', epoch: 0, workers: [{ worker: 0, rows: 10, taken: 10, terminated: false }] },
        { type: 'feed-done', feedId: 'f1' },
        { type: 'feed-failed', feedId: 'f1', error: 'stalled' },
        { type: 'stopped' },
        { type: 'phase', phase: 'executors-granted' },
        { type: 'phase', phase: 'feed-opened', feedId: 'f1', agoMs: null },
      ];
      for (const ev of events) expect(parseLauncherEvent(ev)).to.deep.equal(ev);
    });

    it('rejects an unknown type, a missing field and a mistyped field, naming them', () => {
      expect(() => parseLauncherEvent({ type: 'exploded' })).to.throw(ProtocolError, /unknown type "exploded"/);
      expect(() => parseLauncherEvent({ type: 'failed' })).to.throw(ProtocolError, "launcher event 'failed': missing field 'error'");
      expect(() => parseLauncherEvent({ type: 'feed-epoch', feedId: 'f', epoch: 'one', workers: [] })).to.throw(
        ProtocolError,
        "field 'epoch' must be int",
      );
      expect(() => parseLauncherEvent([])).to.throw(ProtocolError, 'not a JSON object');
    });
  });
});
