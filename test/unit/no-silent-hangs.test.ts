/**
 * Nothing waits forever without saying why: args that JSON cannot carry are refused before
 * anything starts (naming the field), and a trainer that registered but never gets its ctx gives
 * up after TFOS_CTX_TIMEOUT_SEC with an error naming the node and the driver.
 */
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as path from 'node:path';
import { ControlServer } from '../../lib/driver/control-server';
import { TFCluster } from '../../lib/driver/tf-cluster';
import { ArgsNotJsonError, checkJsonArgs } from '../../lib/protocol/json-args';
import type { JobSpec } from '../../lib/protocol/launcher';
import { rejection } from '../support/rejection';

const TRAINER = path.resolve(__dirname, '../../lib/node/trainer-main.js');
const MODULE = path.resolve(__dirname, '../../../test/fixtures/modules/throws.js');

describe('args must be plain JSON', () => {
  const cyclic: Record<string, unknown> = { a: 1 };
  cyclic.self = cyclic;
  const bad: Array<[unknown, RegExp]> = [
    [{ lr: 0.1, fn: () => 1 }, /args\.fn is a function/],
    [[1, 2n], /args\[1\] is a bigint/],
    [{ steps: NaN }, /args\.steps is NaN/],
    [{ when: new Map() }, /args\.when is a Map, not a plain object/],
    [cyclic, /args\.self refers back to itself/],
    [{ nested: [{ x: undefined }] }, /args\.nested\[0\]\.x is undefined/],
  ];
  for (const [args, why] of bad) {
    it(`refuses ${why.source.replace(/\\/g, '')}`, () => {
      expect(() => checkJsonArgs(args)).to.throw(ArgsNotJsonError, why);
    });
  }

  it('accepts plain JSON, including a shared (non-cyclic) sub-object', () => {
    const shared = { k: 1 };
    checkJsonArgs({ a: [1, 'x', true, null, { b: shared }], c: shared });
  });

  it('TFCluster.run refuses before starting anything', async () => {
    const err = await rejection(TFCluster.run({ module: MODULE, numExecutors: 1, args: { cb: () => 1 } }));
    expect(err).to.be.instanceOf(ArgsNotJsonError);
    expect(err.message).to.match(/args\.cb is a function/);
  });
});

describe('a trainer that never gets its ctx', function () {
  this.timeout(30_000);
  it('exits with an error naming the node and the driver after TFOS_CTX_TIMEOUT_SEC', async () => {
    const secret = crypto.randomBytes(32).toString('hex');
    const server = new ControlServer(secret, () => ({}) as JobSpec);
    await server.listen('127.0.0.1');
    let registered = false;
    server.on('register', () => (registered = true)); // and never answers with a ctx
    try {
      const child = spawn(process.execPath, [TRAINER], {
        env: { ...process.env, TFOS_CONTROL_URL: server.url(), TFOS_NODE_INDEX: '3', TFOS_CTX_TIMEOUT_SEC: '1' },
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      child.stdin.end(secret + '\n');
      let stderr = '';
      child.stderr.on('data', (c) => (stderr += c));
      const code = await new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
      expect(registered).to.equal(true);
      expect(code).to.equal(1);
      expect(stderr).to.match(
        new RegExp(`node 3: registered with the driver at ${server.url().replace(/\./g, '\\.')} but got no cluster spec within 1 s`),
      );
      expect(stderr).not.to.include(secret);
    } finally {
      await server.close();
    }
  });
});
