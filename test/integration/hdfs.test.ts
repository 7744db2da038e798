/**
 * The WebHDFS client against a real HDFS: the local stack's (TFOS_TEST_WEBHDFS) or, when that is
 * not set, a NameNode + DataNode this suite provisions and starts itself on free ports.
 */
import { expect } from 'chai';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { WebHdfsClient, WebHdfsError } from '../../lib/io/webhdfs';
import { hdfsHealthy, hdfsServices, provisionHadoop } from '../../lib/stack/hadoop';
import { stderrLogger } from '../../lib/platform/log';
import { tfosPaths } from '../../lib/platform/paths';
import { freePort } from '../../lib/stack/ports';
import { RunningService, startService, stopService } from '../../lib/stack/supervisor';
import { rejection } from '../support/rejection';

const MiB = 1024 * 1024;
const BLOCK = 16 * MiB;

function sha256(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

async function* chunksOf(data: Buffer, size: number): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < data.length; i += size) {
    await new Promise((r) => setImmediate(r));
    yield data.subarray(i, Math.min(i + size, data.length));
  }
}

describe('HDFS over WebHDFS (real NameNode + DataNode)', function () {
  this.timeout(120_000);
  let webhdfs: string;
  let client: WebHdfsClient;
  let tmp: string | undefined;
  const running: RunningService[] = [];
  const root = `/tmp/tfos-webhdfs-test-${process.pid}-${Date.now()}`;
  const data = randomBytes(64 * MiB);
  const bigFile = `${root}/random-64m.bin`;

  before(async function () {
    this.timeout(30 * 60_000);
    const fromEnv = process.env.TFOS_TEST_WEBHDFS?.trim();
    if (fromEnv) {
      webhdfs = fromEnv;
    } else {
      const t0 = Date.now();
      const install = await provisionHadoop(tfosPaths(), stderrLogger);
      const t1 = Date.now();
      tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tfos-hdfs-test-'));
      const ports: number[] = [];
      while (ports.length < 5) {
        const p = await freePort();
        if (!ports.includes(p)) ports.push(p);
      }
      const stack = hdfsServices(install, {
        stackDir: tmp,
        nameNodeRpcPort: ports[0],
        nameNodeHttpPort: ports[1],
        dataNodePorts: [ports[2], ports[3], ports[4]],
      });
      webhdfs = stack.webhdfs;
      for (const spec of stack.services) running.push(await startService(spec, path.join(tmp, 'logs')));
      console.log(
        `      (provisioning ${((t1 - t0) / 1000).toFixed(1)} s, NameNode + DataNode healthy in ${((Date.now() - t1) / 1000).toFixed(1)} s at ${webhdfs})`,
      );
    }
    expect(await hdfsHealthy(webhdfs), `HDFS at ${webhdfs} is not healthy`).to.equal(true);
    client = new WebHdfsClient({ url: webhdfs, user: 'tfos', timeoutMs: 30_000 });
    expect(await client.mkdirs(root)).to.equal(true);
  });

  after(async function () {
    this.timeout(120_000);
    if (client) await client.delete(root, { recursive: true }).catch(() => false);
    for (const svc of running.reverse()) await stopService(svc);
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('round-trips 64 MiB streamed in 1 MiB chunks (sha256 equal via readAll and via a streaming open)', async function () {
    this.timeout(300_000);
    await client.create(bigFile, chunksOf(data, MiB), { overwrite: true, blockSize: BLOCK, replication: 1 });
    const want = sha256(data);

    const all = await client.readAll(bigFile);
    expect(all.length).to.equal(data.length);
    expect(sha256(all)).to.equal(want);

    const hash = createHash('sha256');
    let chunks = 0;
    let bytes = 0;
    for await (const chunk of await client.open(bigFile)) {
      hash.update(chunk as Buffer);
      bytes += (chunk as Buffer).length;
      chunks++;
    }
    expect(bytes).to.equal(data.length);
    expect(chunks, 'the read should arrive as a stream, not one buffer').to.be.greaterThan(1);
    expect(hash.digest('hex')).to.equal(want);
  });

  it('ranged open returns exactly the slice asked for, across a block boundary too', async function () {
    // Its own file: two blocks of 1 MiB (HDFS's smallest block size) and a bit.
    const block = MiB;
    const bytes = data.subarray(0, 2 * block + 4321);
    const file = `${root}/ranged.bin`;
    await client.create(file, bytes, { overwrite: true, blockSize: block, replication: 1 });
    const cases: Array<[number, number]> = [
      [0, 1],
      [12345, 4096],
      [block - 1000, 5000], // spans blocks 0 and 1
      [bytes.length - 777, 777],
    ];
    for (const [offset, length] of cases) {
      const got = await client.readAll(file, { offset, length });
      expect(got.length, `length at ${offset}`).to.equal(length);
      expect(got.equals(bytes.subarray(offset, offset + length)), `bytes at ${offset}`).to.equal(true);
    }
    const tail = await client.readAll(file, { offset: bytes.length - 100 });
    expect(tail.equals(bytes.subarray(bytes.length - 100))).to.equal(true);
  });

  it('list and status show the file with its length, block size, replication and owner', async () => {
    const dir = `${root}/listed`;
    const bytes = data.subarray(0, 3 * MiB + 17);
    await client.create(`${dir}/one.bin`, bytes, { overwrite: true, blockSize: 2 * MiB, replication: 1 });
    const entries = await client.list(dir);
    expect(entries.map((e) => e.pathSuffix)).to.deep.equal(['one.bin']);
    const entry = entries[0];
    expect(entry.type).to.equal('FILE');
    expect(entry.length).to.equal(bytes.length);
    expect(entry.blockSize).to.equal(2 * MiB);
    expect(entry.replication).to.equal(1);
    const st = await client.status(`${dir}/one.bin`);
    expect(st.length).to.equal(bytes.length);
    expect(st.owner).to.equal('tfos');
    const summary = await client.contentSummary(dir);
    expect(summary.length).to.equal(bytes.length);
    expect(summary.fileCount).to.equal(1);
  });

  it('mkdirs, rename and delete', async () => {
    const dir = `${root}/a/b/c`;
    expect(await client.mkdirs(dir)).to.equal(true);
    expect((await client.status(dir)).type).to.equal('DIRECTORY');
    await client.create(`${dir}/x.txt`, Buffer.from('x'));
    expect(await client.rename(`${dir}/x.txt`, `${dir}/y.txt`)).to.equal(true);
    expect(await client.exists(`${dir}/x.txt`)).to.equal(false);
    expect((await client.readAll(`${dir}/y.txt`)).toString()).to.equal('x');
    // HDFS refuses (false, not an error) to rename onto an existing file.
    await client.create(`${dir}/z.txt`, Buffer.from('z'));
    expect(await client.rename(`${dir}/y.txt`, `${dir}/z.txt`)).to.equal(false);
    expect(await client.rename(`${root}/a`, `${root}/moved`)).to.equal(true);
    expect((await client.list(`${root}/moved/b/c`)).map((e) => e.pathSuffix).sort()).to.deep.equal(['y.txt', 'z.txt']);

    const notEmpty = await rejection(client.delete(`${root}/moved`));
    expect(notEmpty).to.be.instanceOf(WebHdfsError);
    expect((notEmpty as WebHdfsError).op).to.equal('DELETE');
    expect(await client.delete(`${root}/moved`, { recursive: true })).to.equal(true);
    expect(await client.exists(`${root}/moved`)).to.equal(false);
    expect(await client.delete(`${root}/moved`, { recursive: true })).to.equal(false);
  });

  it('append adds to the end (Buffer and stream bodies); create without overwrite refuses an existing file', async () => {
    const f = `${root}/log.txt`;
    await client.create(f, Buffer.from('hello'));
    await client.append(f, Buffer.from(', '));
    await client.append(f, chunksOf(Buffer.from('world!'), 2));
    expect((await client.readAll(f)).toString()).to.equal('hello, world!');
    expect((await client.status(f)).length).to.equal(13);

    const exists = await rejection(client.create(f, Buffer.from('again')));
    expect(exists).to.be.instanceOf(WebHdfsError);
    expect((exists as WebHdfsError).exception).to.equal('FileAlreadyExistsException');
    await client.create(f, Buffer.from('replaced'), { overwrite: true });
    expect((await client.readAll(f)).toString()).to.equal('replaced');
  });

  it('a missing path is a WebHdfsError FileNotFoundException naming the path', async () => {
    const missing = `${root}/no/such/file.bin`;
    for (const attempt of [
      () => client.status(missing),
      () => client.open(missing),
      () => client.list(missing),
      () => client.append(missing, Buffer.from('x')),
    ]) {
      const err = await rejection(attempt());
      expect(err, String(err)).to.be.instanceOf(WebHdfsError);
      const e = err as WebHdfsError;
      expect(e.exception, e.message).to.equal('FileNotFoundException');
      expect(e.status).to.equal(404);
      expect(e.path).to.equal(missing);
      expect(e.message).to.contain(missing);
      expect(e.javaClassName).to.equal('java.io.FileNotFoundException');
    }
    expect(await client.exists(missing)).to.equal(false);
  });

  it('an unreachable NameNode fails at once (refused, not timed out) with an error naming host:port', async function () {
    this.timeout(20_000);
    const port = await freePort();
    const err = await rejection(new WebHdfsClient({ url: `http://127.0.0.1:${port}`, timeoutMs: 5000 }).list('/'));
    expect(err).to.be.instanceOf(WebHdfsError);
    expect((err as WebHdfsError).exception).to.equal('ECONNREFUSED');
    expect(err.message).to.contain(`127.0.0.1:${port}`);

    const dns = await rejection(new WebHdfsClient({ url: 'http://no-such-namenode.invalid:9870', timeoutMs: 5000 }).status('/x'));
    expect(dns).to.be.instanceOf(WebHdfsError);
    expect(dns.message).to.contain('no-such-namenode.invalid:9870');
  });
});
