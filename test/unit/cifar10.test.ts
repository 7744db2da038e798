import { expect } from 'chai';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  CIFAR,
  CifarFormatError,
  fileSource,
  findCifarFiles,
  generatedCifarSet,
  readCifarRecords,
  readSha256Sums,
  withReadAhead,
} from '../../lib/io/cifar10';
import { generatedRecord, setLabel, tempDir, truncateFile, writeCifarFixture } from '../support/cifar-fixture';
import { rejection } from '../support/rejection';

async function readAll(src: Parameters<typeof readCifarRecords>[0], expectedRecords?: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of readCifarRecords(src, { expectedRecords })) parts.push(Buffer.from(c.bytes));
  return Buffer.concat(parts);
}

describe('CIFAR-10 files', () => {
  let dir: string;
  before(async () => {
    dir = tempDir();
    await writeCifarFixture(dir, 50, { test: 10, seed: 3 });
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('generates deterministic CIFAR-format records with labels 0–9', async () => {
    const a = generatedCifarSet(50, { seed: 3 });
    const b = generatedCifarSet(50, { seed: 3 });
    const c = generatedCifarSet(50, { seed: 4 });
    const bytesA = await readAll(a.train[2]);
    expect(bytesA.length).to.equal(10 * CIFAR.recordBytes);
    expect(bytesA.equals(await readAll(b.train[2]))).to.equal(true);
    expect(bytesA.equals(await readAll(c.train[2]))).to.equal(false);
    // Record i of the split is a pure function of (seed, i): file 3 starts at record 20.
    expect(bytesA.subarray(0, CIFAR.recordBytes).equals(generatedRecord(3, 20))).to.equal(true);
    const all = Buffer.concat(await Promise.all(a.train.map((s) => readAll(s))));
    const labels = new Set<number>();
    for (let i = 0; i < 50; i++) labels.add(all[i * CIFAR.recordBytes]);
    expect([...labels].every((l) => l >= 0 && l <= 9)).to.equal(true);
    expect(labels.size).to.be.greaterThan(5);
    expect(a.test[0].bytes).to.equal(10 * CIFAR.recordBytes);
  });

  it('finds the batch files, SHA256SUMS and class names of a directory', async () => {
    const found = findCifarFiles(dir);
    expect(found.missing).to.deep.equal([]);
    expect(found.set?.train.map((s) => s.name)).to.deep.equal(CIFAR.trainFiles);
    expect(found.set?.test[0].expectedSha256).to.match(/^[0-9a-f]{64}$/);
    expect(found.set?.classes[0]).to.equal('airplane');
    expect(findCifarFiles(path.join(dir, 'nope')).missing).to.have.length(6);
  });

  it('reads .bin.xz through xz, and reads ahead one file without changing the bytes', async () => {
    const xzDir = tempDir();
    try {
      const set = await writeCifarFixture(xzDir, 50, { test: 10, seed: 3, xz: true });
      expect(fs.existsSync(path.join(xzDir, 'data_batch_1.bin.xz'))).to.equal(true);
      const src = fileSource(xzDir, 'data_batch_1.bin', readSha256Sums(xzDir));
      expect(src?.bytes).to.equal(10 * CIFAR.recordBytes);
      const viaXz = await readAll(src!);
      expect(viaXz.equals(await readAll(set.train[0]))).to.equal(true);
      const found = findCifarFiles(xzDir).set!;
      const ahead = withReadAhead([...found.train, ...found.test]);
      const direct = await Promise.all([...set.train, ...set.test].map((s) => readAll(s)));
      for (let i = 0; i < ahead.length; i++) expect((await readAll(ahead[i])).equals(direct[i]), ahead[i].name).to.equal(true);
    } finally {
      fs.rmSync(xzDir, { recursive: true, force: true });
    }
  });

  it('names the file, record and byte offset of a truncated record', async () => {
    const bad = tempDir();
    try {
      await writeCifarFixture(bad, 50, { test: 10, seed: 3 });
      const file = path.join(bad, 'data_batch_3.bin');
      truncateFile(file, 9 * CIFAR.recordBytes + 1021);
      const src = fileSource(bad, 'data_batch_3.bin')!;
      const err = await rejection(readAll(src));
      expect(err).to.be.instanceOf(CifarFormatError);
      expect(err.message).to.equal(`data_batch_3.bin: record 9 at byte ${9 * 3073} is truncated (1021 of 3073 bytes)`);
      // The real-file check (10,000 records) names the shortfall too.
      truncateFile(file, 9 * CIFAR.recordBytes);
      const short = await rejection(readAll(fileSource(bad, 'data_batch_3.bin')!, 10_000));
      expect(short.message).to.match(/^data_batch_3\.bin: holds 9 records \(27657 bytes\); a CIFAR-10 batch file holds 10000 records/);
    } finally {
      fs.rmSync(bad, { recursive: true, force: true });
    }
  });

  it('names the record and byte offset of a label outside 0–9', async () => {
    const bad = tempDir();
    try {
      await writeCifarFixture(bad, 50, { test: 10, seed: 3 });
      setLabel(path.join(bad, 'data_batch_2.bin'), 7, 12);
      const err = await rejection(readAll(fileSource(bad, 'data_batch_2.bin')!));
      expect(err.message).to.equal(`data_batch_2.bin: record 7 at byte ${7 * 3073} has label 12 (labels are 0–9)`);
    } finally {
      fs.rmSync(bad, { recursive: true, force: true });
    }
  });

  it('rejects bytes that do not match SHA256SUMS', async () => {
    const bad = tempDir();
    try {
      await writeCifarFixture(bad, 50, { test: 10, seed: 3 });
      const file = path.join(bad, 'test_batch.bin');
      const bytes = fs.readFileSync(file);
      bytes[100] ^= 0xff; // a pixel: label checks cannot see it
      fs.writeFileSync(file, bytes);
      const err = await rejection(readAll(fileSource(bad, 'test_batch.bin', readSha256Sums(bad))!));
      expect(err.message).to.match(
        /^test_batch\.bin: SHA-256 [0-9a-f]{64} does not match SHA256SUMS \([0-9a-f]{64}\); the file is corrupt$/,
      );
    } finally {
      fs.rmSync(bad, { recursive: true, force: true });
    }
  });

  it('reports a corrupt .xz file by name', async () => {
    const bad = tempDir();
    try {
      await writeCifarFixture(bad, 50, { test: 10, seed: 3, xz: true });
      const file = path.join(bad, 'data_batch_1.bin.xz');
      const bytes = fs.readFileSync(file);
      bytes[Math.floor(bytes.length / 2)] ^= 0x55;
      fs.writeFileSync(file, bytes);
      const err = await rejection(readAll(fileSource(bad, 'data_batch_1.bin')!));
      expect(err.message).to.match(/^data_batch_1\.bin(\.xz)?: /);
    } finally {
      fs.rmSync(bad, { recursive: true, force: true });
    }
  });
});
