/**
 * `npm run bench [-- name ...]`: runs the named benchmarks (all by default) and writes each
 * table to bench-results/<name>.md (and the rows to <name>.json). Ratios are measured side by side in one run, never across runs.
 */
import { benchStartup } from './startup';
import { markdownTable, Row, writeResults } from './table';

type Bench = () => Promise<Row[]>;

function optional(modulePath: string, exportName: string): Bench {
  return async () => {
    // Benchmarks of other subsystems load lazily, so one missing piece does not stop the rest.
    const mod = require(modulePath) as Record<string, Bench>;
    return mod[exportName]();
  };
}

const BENCHES: Record<string, Bench> = {
  startup: () => benchStartup(),
  allreduce: optional('./allreduce', 'benchAllreduce'),
  feed: optional('./feed', 'benchFeed'),
  ingest: optional('./ingest', 'benchIngest'),
  step: optional('./step', 'benchStep'),
  'step-levers': optional('./step', 'benchStepLevers'),
  cifar10: optional('./cifar10', 'benchCifar10'),
};

async function main(names: string[]): Promise<number> {
  // step-levers is the long form of step, cifar10 trains for minutes per row: only when named.
  const chosen = names.length ? names : Object.keys(BENCHES).filter((n) => n !== 'step-levers' && n !== 'cifar10');
  let failed = 0;
  for (const name of chosen) {
    const bench = BENCHES[name];
    if (!bench) {
      console.error(`unknown benchmark '${name}' (have: ${Object.keys(BENCHES).join(', ')})`);
      return 2;
    }
    console.log(`\n## ${name}\n`);
    try {
      const rows = await bench();
      console.log(markdownTable(rows));
      console.log(`written to ${writeResults(name, rows)} and its .json`);
    } catch (err) {
      failed++;
      console.error(`benchmark ${name} failed: ${err instanceof Error ? err.stack : String(err)}`);
    }
  }
  return failed ? 1 : 0;
}

void main(process.argv.slice(2)).then((code) => process.exit(code));
