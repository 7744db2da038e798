/**
 * `tfos data cifar10`: ingest CIFAR-10 (binary version, `.bin` or `.bin.xz`) — or a generated
 * CIFAR-format set — into a partitioned dataset on HDFS or a local path (docs/data.md).
 */
import { parseArgs } from 'node:util';
import { CifarSourceSet, CIFAR, findCifarFiles, generatedCifarSet } from '../io/cifar10';
import { resolveLocation } from '../io/dataset-fs';
import { writeCifarDataset } from '../io/dataset';
import { defaultArrowPython } from '../io/dataset-parquet';
import { stderrLogger } from '../platform/log';
import { resolveSpark } from '../platform/spark';

export const DATA_USAGE = `tfos data cifar10 --dest PATH|hdfs://HOST:PORT/PATH [--src DIR] [--generate N] [--webhdfs URL]
                   [--partitions 10] [--batch-rows 500] [--no-parquet] [--parquet-compression none|snappy|zstd]
                   [--overwrite] [--seed S] [--records-per-file N] [--json]`;

const HELP = `usage: ${DATA_USAGE}

Writes DEST/train and DEST/test: Parquet parts for Spark (spark.read.parquet("DEST/train")) and
Arrow IPC copies under _arrow/ for trainers (DataFeed.fromDataset("DEST/train", ...)), with a
_manifest.json per split; columns id (int64), label (int32), image (binary, 3,072 bytes CHW).
  --src DIR          directory with data_batch_1..5.bin[.xz] and test_batch.bin[.xz] (default TFOS_CIFAR10_DIR);
                     SHA256SUMS there is verified. Absent or incomplete: a generated set is written instead.
  --generate N       write a generated CIFAR-format set: N train records, N/5 test (default N: 50000)
  --webhdfs URL      WebHDFS endpoint for hdfs:// destinations (default TFOS_WEBHDFS, else http://HOST:9870)
  --partitions P     partitions per split (default 10)
  --no-parquet       Arrow only (no Python/pyarrow needed)
  --overwrite        replace DEST once the new dataset is complete`;

function intOption(name: string, v: string | undefined, min: number): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be an integer ≥ ${min}, got '${v}'`);
  return n;
}

export async function dataCommand(argv: string[]): Promise<number> {
  const [what, ...rest] = argv;
  if (what === undefined || what === '-h' || what === '--help' || what === 'help') {
    console.log(HELP);
    return what === undefined ? 2 : 0;
  }
  if (what !== 'cifar10') throw new Error(`unknown dataset '${what}' (supported: cifar10)\nusage: ${DATA_USAGE}`);
  const { values } = parseArgs({
    args: rest,
    options: {
      src: { type: 'string' },
      dest: { type: 'string' },
      generate: { type: 'string' },
      webhdfs: { type: 'string' },
      partitions: { type: 'string' },
      'batch-rows': { type: 'string' },
      'no-parquet': { type: 'boolean' },
      'parquet-compression': { type: 'string' },
      overwrite: { type: 'boolean' },
      seed: { type: 'string' },
      'records-per-file': { type: 'string' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  if (!values.dest) throw new Error(`--dest is required\nusage: ${DATA_USAGE}`);
  const log = stderrLogger;
  const generate = intOption('generate', values.generate, 1);
  const seed = intOption('seed', values.seed, 0) ?? 1;
  const recordsPerFile = intOption('records-per-file', values['records-per-file'], 0);

  let set: CifarSourceSet;
  let expectedRecordsPerFile: number | undefined;
  const src = values.src ?? (process.env.TFOS_CIFAR10_DIR?.trim() || undefined);
  if (generate === undefined && src) {
    const found = findCifarFiles(src);
    if (found.set) {
      set = found.set;
      expectedRecordsPerFile = recordsPerFile === undefined ? CIFAR.recordsPerFile : recordsPerFile || undefined;
    } else {
      log(`${src} lacks ${found.missing.join(', ')} (.bin or .bin.xz): writing a generated CIFAR-format set instead`);
      set = generatedCifarSet(50_000, { seed });
    }
  } else {
    if (generate === undefined) log('no --src (or TFOS_CIFAR10_DIR): writing a generated CIFAR-format set (50,000 train / 10,000 test)');
    set = generatedCifarSet(generate ?? 50_000, { seed });
  }

  let parquet: { python: string; compression?: string } | false = false;
  if (!values['no-parquet']) {
    // Never installs: without the provisioned Python (pyarrow) this fails with "run `tfos setup`".
    const python = defaultArrowPython() ?? resolveSpark().python;
    parquet = { python, compression: values['parquet-compression'] };
  }

  const dest = resolveLocation(values.dest, { webhdfs: values.webhdfs });
  log(`ingesting ${set.description} into ${dest.fs.uri(dest.path)}`);
  const res = await writeCifarDataset(set, dest, {
    partitions: intOption('partitions', values.partitions, 1),
    batchRows: intOption('batch-rows', values['batch-rows'], 1),
    parquet,
    overwrite: values.overwrite,
    expectedRecordsPerFile,
    log,
  });
  if (values.json) {
    console.log(JSON.stringify({ dest: res.dest, seconds: res.seconds, splits: res.splits }));
  } else {
    const lines = [`${res.dest}: written in ${res.seconds.toFixed(1)} s`];
    for (const [split, s] of Object.entries(res.splits)) {
      lines.push(
        `  ${split.padEnd(5)} ${String(s.rows).padStart(6)} rows, ${s.partitions} partitions: ${(s.arrowBytes / 1e6).toFixed(1)} MB Arrow (${split}/_arrow/)` +
          (parquet ? `, ${(s.parquetBytes / 1e6).toFixed(1)} MB Parquet (${split}/)` : ''),
      );
    }
    if (parquet) lines.push(`  Spark: spark.read.parquet("${res.dest}/train")`);
    lines.push(`  Node:  DataFeed.fromDataset("${res.dest}/train", { shard, numShards })`);
    console.log(lines.join('\n'));
  }
  return 0;
}
