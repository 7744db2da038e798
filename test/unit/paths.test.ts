/**
 * Paths that would reach somewhere other than they say are refused, naming them: HDFS paths with
 * '.'/'..' segments or bad escapes (before any request), manifests pointing outside their
 * dataset, and `tfos pack` following a symbolic link out of the project, packing credentials
 * files, or unpacking under the alias '.' or '..'.
 */
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { archiveLaunch, packProject } from '../../lib/driver/pack';
import { resolveLocation, LocalFs } from '../../lib/io/dataset-fs';
import { readManifest } from '../../lib/io/dataset';
import { checkedHdfsPath, UnsafePathError } from '../../lib/io/hdfs-path';
import { WebHdfsClient } from '../../lib/io/webhdfs';
import { rejection } from '../support/rejection';

describe('HDFS paths', () => {
  const bad: Array<[string, RegExp]> = [
    ['/data/../etc', /'\.' and '\.\.' segments/],
    ['/data/./x', /'\.' and '\.\.' segments/],
    ['relative/x', /must be absolute/],
    ['/a\0b', /NUL/],
  ];
  for (const [p, why] of bad) {
    it(`refuses ${JSON.stringify(p)}, naming it`, () => {
      const err = (() => {
        try {
          checkedHdfsPath(p);
        } catch (e) {
          return e as Error;
        }
      })();
      expect(err).to.be.instanceOf(UnsafePathError);
      expect(err!.message).to.include(JSON.stringify(p)).and.match(why);
    });
  }

  it('decodes a URI path and refuses bad or path-changing escapes', () => {
    expect(checkedHdfsPath('/a%20dir//x', 'hdfs://nn/a%20dir//x', { decode: true })).to.equal('/a dir/x');
    expect(() => checkedHdfsPath('/a/%2e%2e/b', 'hdfs://nn/a/%2e%2e/b', { decode: true })).to.throw(
      UnsafePathError,
      /hdfs:\/\/nn\/a\/%2e%2e\/b.*'\.\.' segments/,
    );
    expect(() => checkedHdfsPath('/a/%zz', 'hdfs://nn/a/%zz', { decode: true })).to.throw(UnsafePathError, /not a valid escape/);
    expect(() => checkedHdfsPath('/a/%c3', 'hdfs://nn/a/%c3', { decode: true })).to.throw(UnsafePathError, /do not decode/);
    expect(() => checkedHdfsPath('/a%2F..%2Fb', 'hdfs://nn/a%2F..%2Fb', { decode: true })).to.throw(UnsafePathError, /escaped '\/'/);
  });

  it('the WebHDFS client refuses them before sending any request', async () => {
    let requests = 0;
    const nn = http.createServer((_req, res) => {
      requests++;
      res.end('{}');
    });
    await new Promise<void>((r) => nn.listen(0, '127.0.0.1', () => r()));
    try {
      const client = new WebHdfsClient({ url: `http://127.0.0.1:${(nn.address() as { port: number }).port}`, user: 'u' });
      for (const p of ['/user/x/../../etc', 'hdfs://nn:8020/a/../b', 'hdfs://nn:8020/a/%2e%2e/b', 'hdfs://nn:8020/a%zz']) {
        const err = await rejection(client.status(p));
        expect(err).to.be.instanceOf(UnsafePathError);
        expect(err.message).to.include(p);
      }
      const renameErr = await rejection(client.rename('/ok', '/tmp/../user/other'));
      expect(renameErr.message).to.include('/tmp/../user/other');
      expect(requests).to.equal(0);
    } finally {
      nn.close();
    }
  });

  it('dataset locations on HDFS are checked the same way', () => {
    expect(() => resolveLocation('hdfs://nn:8020/data/../x')).to.throw(UnsafePathError, /hdfs:\/\/nn:8020\/data\/\.\.\/x/);
    expect(() => resolveLocation('webhdfs://nn:9870/%2e%2e/x')).to.throw(UnsafePathError);
    expect(resolveLocation('hdfs://nn:8020/data/cifar10', { webhdfs: 'http://nn:9870' }).path).to.equal('/data/cifar10');
  });

  it('a manifest whose partitions point outside the split is refused', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tfos-manifest-'));
    try {
      const manifest = { format: 'tfos-dataset', version: 1, rows: 1, partitions: [{ index: 0, arrow: { path: '../../secret.arrow' } }] };
      const file = path.join(dir, '_manifest.json');
      fs.writeFileSync(file, JSON.stringify(manifest));
      const err = await rejection(readManifest(new LocalFs(), dir));
      // Either the format check or the path check stops it; never a read of ../../secret.arrow.
      expect(err.message).to.match(/secret\.arrow|not a tfos-dataset manifest|not a .* manifest/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('tfos pack', () => {
  let project: string;
  let outside: string;
  beforeEach(() => {
    project = fs.mkdtempSync(path.join(os.tmpdir(), 'tfos-pack-'));
    outside = fs.mkdtempSync(path.join(os.tmpdir(), 'tfos-outside-'));
    fs.writeFileSync(path.join(project, 'package.json'), '{"name":"p","version":"1.0.0"}');
    const trainer = path.join(project, 'node_modules/tfjs-on-spark/dist/lib/node');
    fs.mkdirSync(trainer, { recursive: true });
    fs.writeFileSync(path.join(trainer, 'trainer-main.js'), '');
    fs.mkdirSync(path.join(project, 'src'));
    fs.writeFileSync(path.join(project, 'src/train.js'), 'module.exports = () => 1;');
    fs.writeFileSync(path.join(project, '.env'), 'TOKEN=1');
    fs.writeFileSync(path.join(project, 'src/.env.local'), 'TOKEN=2');
    fs.writeFileSync(path.join(project, '.npmrc'), '//registry/:_authToken=3');
    fs.writeFileSync(path.join(outside, 'id_rsa'), 'private');
  });
  afterEach(() => {
    fs.rmSync(project, { recursive: true, force: true });
    fs.rmSync(outside, { recursive: true, force: true });
  });

  const listing = (archive: string) => execFileSync('tar', ['-tzf', archive]).toString().split('\n');

  it('leaves .env* and .npmrc out unless asked for', async () => {
    const out = path.join(outside, 'p.tgz');
    await packProject({ projectDir: project, out });
    const files = listing(out);
    expect(files).to.include('./src/train.js');
    expect(files.filter((f) => /\.env|\.npmrc/.test(f))).to.deep.equal([]);
    await packProject({ projectDir: project, out, includeEnvFiles: true });
    expect(listing(out)).to.include.members(['./.env', './.npmrc', './src/.env.local']);
  });

  it('refuses a symbolic link out of the project, naming it and its target', async () => {
    fs.symlinkSync(outside, path.join(project, 'src/data'));
    const err = await rejection(packProject({ projectDir: project, out: path.join(outside, 'p.tgz') }));
    expect(err.message)
      .to.include(path.join(project, 'src/data'))
      .and.include(fs.realpathSync(outside))
      .and.match(/outside the project/);
    expect(fs.existsSync(path.join(outside, 'p.tgz'))).to.equal(false);
  });

  it('follows a symbolic link inside the project', async () => {
    fs.symlinkSync(path.join(project, 'src/train.js'), path.join(project, 'train.js'));
    const out = path.join(outside, 'p.tgz');
    await packProject({ projectDir: project, out });
    expect(listing(out)).to.include('./train.js');
  });

  it("refuses '.' and '..' as the archive alias", () => {
    for (const alias of ['.', '..']) {
      expect(() => archiveLaunch({ uri: '/x.tgz', projectDir: project, alias }, path.join(project, 'src/train.js'))).to.throw(
        /alias '\.{1,2}' must be a plain directory name/,
      );
    }
  });
});
