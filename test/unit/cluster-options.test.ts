/**
 * TFCluster.run's role options, as TFoS has them: `masterNode` (a chief, or null for workers only)
 * and `evalNode` (one evaluator, last), with ps nodes first; and options it does not have are
 * refused by name before anything starts.
 */
import { expect } from 'chai';
import * as path from 'node:path';
import { assignRoles } from '../../lib/driver/reservation';
import { TFCluster, TFClusterRunOptions } from '../../lib/driver/tf-cluster';
import { rejection } from '../support/rejection';

const roles = (opts: Parameters<typeof assignRoles>[0]) => assignRoles(opts).map((r) => `${r.job}:${r.taskIndex}`);

describe('TFCluster.run roles and options', () => {
  it('by default: ps nodes first, then the chief, then workers', () => {
    expect(roles({ clusterSize: 4, numPs: 1 })).to.deep.equal(['ps:0', 'chief:0', 'worker:0', 'worker:1']);
  });

  it('masterNode: null gives workers only (worker:0 is the first of them)', () => {
    expect(roles({ clusterSize: 4, numPs: 1, masterNode: null })).to.deep.equal(['ps:0', 'worker:0', 'worker:1', 'worker:2']);
    expect(roles({ clusterSize: 1, numPs: 0, masterNode: null })).to.deep.equal(['worker:0']);
  });

  it('evalNode: one evaluator, last, taken from the workers', () => {
    expect(roles({ clusterSize: 4, numPs: 1, evalNode: true })).to.deep.equal(['ps:0', 'chief:0', 'worker:0', 'evaluator:0']);
    expect(roles({ clusterSize: 3, numPs: 0, masterNode: null, evalNode: true })).to.deep.equal(['worker:0', 'worker:1', 'evaluator:0']);
  });

  it('refuses a layout with no worker left, counting the evaluator', () => {
    expect(() => assignRoles({ clusterSize: 2, numPs: 1, evalNode: true })).to.throw(
      'numExecutors=2 leaves no worker after 1 ps node(s) and 1 evaluator',
    );
    expect(() => assignRoles({ clusterSize: 0, numPs: 0 })).to.throw('numExecutors must be a positive integer, got 0');
    expect(() => assignRoles({ clusterSize: 2, numPs: -1 })).to.throw('numPs must be a non-negative integer, got -1');
  });

  it('refuses the tensorboard option by name before starting anything', async () => {
    const module = path.resolve(__dirname, '../../../test/fixtures/modules/report-context.js');
    const opts = { module, numExecutors: 1, tensorboard: true } as unknown as TFClusterRunOptions;
    const err = await rejection(TFCluster.run(opts));
    expect(err.message).to.equal(
      'TFCluster.run: there is no tensorboard option: write summaries from your training function into logDir and run `tensorboard --logdir` on it',
    );
  });

  it('refuses a driverSilenceTimeout that is not a positive number of seconds, naming it', async () => {
    const module = path.resolve(__dirname, '../../../test/fixtures/modules/report-context.js');
    const err = await rejection(TFCluster.run({ module, numExecutors: 1, driverSilenceTimeout: 0 }));
    expect(err.message).to.equal('TFCluster.run: driverSilenceTimeout must be a positive number of seconds, got 0');
  });
});
