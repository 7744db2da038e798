/**
 * The dataset over WebHDFS: ingest, sharded feed, cleanup on failure, Spark reading the Parquet.
 * Runs against the local stack's HDFS (failing, naming HDFS, when the stack is missing) and against
 * an in-process stand-in that speaks the same REST protocol (namenode redirects to a "datanode",
 * ranged OPEN, RENAME refusing an existing target). A full CIFAR-10 ingest is a benchmark:
 * `npm run bench ingest`.
 */
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { Table } from 'apache-arrow';
import { CifarSourceSet, findCifarFiles, generatedCifarSet } from '../../lib/io/cifar10';
import { DatasetFs, resolveLocation } from '../../lib/io/dataset-fs';
import { readManifest, writeCifarDataset } from '../../lib/io/dataset';
import { DataFeed } from '../../lib/node/data-feed';
import { arrowPython, generatedRecord, setLabel, tempDir, writeCifarFixture } from '../support/cifar-fixture';
import { requireStack } from '../support/stack';
import { rejection } from '../support/rejection';

/** A WebHDFS REST stand-in over a local directory. */
function fakeWebHdfs(root: string): Promise<{ url: string; close: () => Promise<void>; requests: string[] }> {
  const requests: string[] = [];
  const local = (p: string) => path.join(root, path.posix.normalize(decodeURIComponent(p)));
  const remote = (res: http.ServerResponse, status: number, exception: string, message: string) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ RemoteException: { exception, message } }));
  };
  const json = (res: http.ServerResponse, body: unknown, status = 200) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };
  const server = http.createServer((req, res) => {
    const u = new URL(req.url ?? '/', 'http://x');
    const op = u.searchParams.get('op') ?? '';
    const p = u.pathname.replace(/^\/webhdfs\/v1/, '') || '/';
    const file = local(p);
    const datanode = u.searchParams.has('dn');
    requests.push(`${req.method} ${op}${datanode ? '(dn)' : ''} ${p}`);
    const redirect = () => `http://${req.headers.host}${req.url}&dn=1`;
    if (op === 'GETFILESTATUS' || op === 'LISTSTATUS') {
      if (!fs.existsSync(file)) return remote(res, 404, 'FileNotFoundException', `File does not exist: ${p}`);
      const st = (f: string, name: string) => {
        const s = fs.statSync(f);
        return { pathSuffix: name, type: s.isDirectory() ? 'DIRECTORY' : 'FILE', length: s.isDirectory() ? 0 : s.size };
      };
      if (op === 'GETFILESTATUS') return json(res, { FileStatus: st(file, '') });
      return json(res, { FileStatuses: { FileStatus: fs.readdirSync(file).map((n) => st(path.join(file, n), n)) } });
    }
    if (op === 'MKDIRS') {
      fs.mkdirSync(file, { recursive: true });
      return json(res, { boolean: true });
    }
    if (op === 'CREATE' && !datanode) {
      req.resume();
      if (u.searchParams.get('noredirect') === 'true') return json(res, { Location: redirect() });
      res.writeHead(307, { location: redirect() });
      return res.end();
    }
    if (op === 'CREATE') {
      fs.mkdirSync(path.dirname(file), { recursive: true }); // HDFS creates parents
      const out = fs.createWriteStream(file);
      req.pipe(out);
      out.on('finish', () => {
        res.writeHead(201);
        res.end();
      });
      return;
    }
    if (op === 'OPEN' && !datanode) {
      if (!fs.existsSync(file)) return remote(res, 404, 'FileNotFoundException', `File does not exist: ${p}`);
      res.writeHead(307, { location: redirect() });
      return res.end();
    }
    if (op === 'OPEN') {
      const buf = fs.readFileSync(file);
      const offset = Number(u.searchParams.get('offset') ?? 0);
      const length = u.searchParams.has('length') ? Number(u.searchParams.get('length')) : buf.length - offset;
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      return res.end(buf.subarray(offset, offset + length));
    }
    if (op === 'RENAME') {
      const dest = local(u.searchParams.get('destination') ?? '');
      if (!fs.existsSync(file) || fs.existsSync(dest)) return json(res, { boolean: false });
      fs.mkdirSync(path.dirname(dest), { recursive: true });
      fs.renameSync(file, dest);
      return json(res, { boolean: true });
    }
    if (op === 'DELETE') {
      const existed = fs.existsSync(file);
      fs.rmSync(file, { recursive: true, force: true });
      return json(res, { boolean: existed });
    }
    remote(res, 400, 'IllegalArgumentException', `unsupported op ${op}`);
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () =>
      resolve({
        url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
        requests,
        close: () => new Promise<void>((r) => server.close(() => r())),
      }),
    ),
  );
}

interface Target {
  name: string;
  /** The in-process WebHDFS stand-in (exercises the client where Hadoop is absent), or the stack's real HDFS. */
  standIn: boolean;
  /** hdfs:// (or webhdfs://) base directory for this run. */
  base: string;
  webhdfs: string;
  setup: () => Promise<void>;
  teardown?: () => Promise<void>;
}

function targets(): Target[] {
  let fake: Awaited<ReturnType<typeof fakeWebHdfs>> | undefined;
  const fakeRoot = tempDir('tfos-fake-hdfs-');
  const fakeTarget: Target = {
    name: 'WebHDFS stand-in',
    standIn: true,
    base: '',
    webhdfs: '',
    setup: async () => {
      fake = await fakeWebHdfs(fakeRoot);
      fakeTarget.webhdfs = fake.url;
      fakeTarget.base = `hdfs://127.0.0.1:8020/tmp/tfos-dataset-${process.pid}`;
    },
    teardown: async () => {
      await fake?.close();
      fs.rmSync(fakeRoot, { recursive: true, force: true });
    },
  };
  const realTarget: Target = {
    name: "the local stack's HDFS",
    standIn: false,
    base: '',
    webhdfs: '',
    // Throws, naming HDFS, when the stack is missing or unhealthy.
    setup: async () => {
      const stack = requireStack();
      realTarget.webhdfs = stack.webhdfs;
      realTarget.base = `${stack.defaultFS.replace(/\/+$/, '')}/tmp/tfos-dataset-${process.pid}-${Date.now()}`;
    },
  };
  return [fakeTarget, realTarget];
}

for (const target of targets()) {
  describe(`dataset on HDFS: ${target.name}`, function () {
    this.timeout(300_000);
    let python: string;
    let fsys: DatasetFs;
    let basePath: string;
    const SEED = 21;
    let set: CifarSourceSet;

    before(async () => {
      await target.setup();
      // pyarrow comes with `tfos setup`; its absence is a broken setup, not a reason to skip.
      const py = arrowPython();
      if (!py) throw new Error("no Python with pyarrow: run 'node bin/tfos.js setup'");
      python = py;
      const loc = resolveLocation(target.base, { webhdfs: target.webhdfs });
      fsys = loc.fs;
      basePath = loc.path;
      set = generatedCifarSet(600, { seed: SEED, testRecords: 120 });
    });
    after(async () => {
      await fsys?.remove(basePath).catch(() => {});
      await target.teardown?.();
    });

    it('ingests to hdfs:// and feeds every record once across 2 shards × 2 epochs (ranged reads)', async () => {
      const dest = `${target.base}/cifar`;
      const res = await writeCifarDataset(set, resolveLocation(dest, { webhdfs: target.webhdfs }), {
        partitions: 3,
        batchRows: 50,
        parquet: { python },
      });
      expect(res.dest).to.equal(dest);
      expect((await fsys.list(`${basePath}/cifar`)).sort()).to.deep.equal(['_dataset.json', 'test', 'train']);
      expect(await fsys.list(basePath)).to.deep.equal(['cifar']); // no staging left
      const m = await readManifest(fsys, `${basePath}/cifar/train`);
      expect(m.rows).to.equal(600);
      expect((await fsys.list(`${basePath}/cifar/train`)).filter((n) => n.endsWith('.parquet'))).to.have.length(3);
      const counts = new Array<number>(600).fill(0);
      for (let shard = 0; shard < 2; shard++) {
        const feed = await DataFeed.fromDataset(`${dest}/train`, {
          shard,
          numShards: 2,
          epochs: 2,
          shuffle: shard === 1,
          webhdfs: target.webhdfs,
        });
        let t: Table | null;
        while ((t = await feed.nextBatch(64))) {
          const ids = t.getChild('id')!;
          const labels = t.getChild('label')!;
          const images = t.getChild('image')!;
          for (let i = 0; i < t.numRows; i++) {
            const id = Number(ids.get(i));
            const rec = generatedRecord(SEED, id);
            expect(labels.get(i)).to.equal(rec[0]);
            expect(Buffer.from(images.get(i) as Uint8Array).equals(rec.subarray(1)), `image ${id}`).to.equal(true);
            counts[id]++;
          }
        }
      }
      expect(counts.every((c) => c === 2)).to.equal(true);
    });

    it('--overwrite keeps the old copy until the new one is complete, and never nests it', async () => {
      const dest = resolveLocation(`${target.base}/over`, { webhdfs: target.webhdfs });
      await writeCifarDataset(generatedCifarSet(100, { seed: 1, testRecords: 20 }), dest, { partitions: 2, parquet: false });
      const failing = writeCifarDataset(generatedCifarSet(150, { seed: 2, testRecords: 30 }), dest, {
        partitions: 2,
        parquet: false,
        overwrite: true,
        onPartition: (split, i) => {
          if (split === 'test' && i === 1) throw new Error('crash while writing the new copy');
        },
      });
      expect((await rejection(failing)).message).to.equal('crash while writing the new copy');
      expect((await readManifest(fsys, `${basePath}/over/train`)).rows).to.equal(100);
      await writeCifarDataset(generatedCifarSet(150, { seed: 2, testRecords: 30 }), dest, {
        partitions: 2,
        parquet: false,
        overwrite: true,
      });
      expect((await readManifest(fsys, `${basePath}/over/train`)).rows).to.equal(150);
      expect((await fsys.list(`${basePath}/over`)).sort()).to.deep.equal(['_dataset.json', 'test', 'train']);
      expect((await fsys.list(basePath)).filter((n) => n.startsWith('.over.'))).to.deep.equal([]);
    });

    it('leaves no DEST and no staging directory on HDFS after bad input', async () => {
      const src = tempDir('tfos-cifar-src-');
      try {
        await writeCifarFixture(src, 200, { test: 40, seed: 4 });
        setLabel(path.join(src, 'test_batch.bin'), 5, 200);
        const dest = `${target.base}/bad`;
        const err = await rejection(
          writeCifarDataset(findCifarFiles(src).set!, resolveLocation(dest, { webhdfs: target.webhdfs }), {
            partitions: 4,
            parquet: false,
          }),
        );
        expect(err.message).to.equal(`test_batch.bin: record 5 at byte ${5 * 3073} has label 200 (labels are 0–9)`);
        expect(await fsys.stat(`${basePath}/bad`)).to.equal(undefined);
        expect((await fsys.list(basePath)).filter((n) => n.startsWith('.bad.tmp-'))).to.deep.equal([]);
      } finally {
        fs.rmSync(src, { recursive: true, force: true });
      }
    });

    // Spark needs a real NameNode (it speaks Hadoop RPC, not the stand-in's REST).
    if (!target.standIn) {
      it('Spark reads the Parquet split from HDFS', async function () {
        const dest = `${target.base}/spark-read`;
        await writeCifarDataset(set, resolveLocation(dest, { webhdfs: target.webhdfs }), {
          partitions: 3,
          batchRows: 50,
          parquet: { python },
        });
        const out = execFileSync(
          python,
          [
            '-c',
            [
              'import sys',
              'from pyspark.sql import SparkSession',
              "s = SparkSession.builder.master('local[1]').config('spark.ui.enabled', 'false').getOrCreate()",
              'df = s.read.parquet(sys.argv[1])',
              "print(df.count(), ','.join(f.dataType.simpleString() for f in df.schema.fields))",
            ].join('\n'),
            `${dest}/train`,
          ],
          { encoding: 'utf8', timeout: 280_000, stdio: ['ignore', 'pipe', 'ignore'] },
        );
        expect(out.trim().split('\n').pop()).to.equal('600 bigint,int,binary');
      });
    }
  });
}
