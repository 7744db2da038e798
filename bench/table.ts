/** Benchmark results as a markdown table, printed and written to bench-results/<name>.md and .json. */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export type Row = Record<string, string | number>;

export function markdownTable(rows: Row[]): string {
  if (!rows.length) return '(no rows)\n';
  const cols = [...new Set(rows.flatMap((r) => Object.keys(r)))];
  const fmt = (v: string | number | undefined) => (typeof v === 'number' ? (Number.isInteger(v) ? String(v) : v.toFixed(2)) : (v ?? ''));
  return (
    [
      `| ${cols.join(' | ')} |`,
      `|${cols.map(() => '---').join('|')}|`,
      ...rows.map((r) => `| ${cols.map((c) => fmt(r[c])).join(' | ')} |`),
    ].join('\n') + '\n'
  );
}

/**
 * Writes bench-results/<name>.md (the table) and <name>.json (the same rows, for scripts), each
 * aside and then renamed into place, so a run stopped midway leaves no half-written file.
 * Returns the markdown file's path.
 */
export function writeResults(name: string, rows: Row[], notes = ''): string {
  const dir = path.resolve(__dirname, '../../bench-results');
  fs.mkdirSync(dir, { recursive: true });
  const machine = {
    date: new Date().toISOString(),
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? 'cpu',
    memGiB: Math.round(os.totalmem() / 2 ** 30),
    load: Number(os.loadavg()[0].toFixed(1)),
  };
  const header = `# ${name}\n\n${machine.date} on ${machine.cpus} × ${machine.cpuModel}, ${machine.memGiB} GiB, load ${machine.load}\n\n`;
  const write = (file: string, text: string) => {
    const tmp = `${file}.tmp-${process.pid}`;
    fs.writeFileSync(tmp, text);
    fs.renameSync(tmp, file);
  };
  const file = path.join(dir, `${name}.md`);
  write(path.join(dir, `${name}.json`), JSON.stringify({ benchmark: name, ...machine, rows, notes: notes || undefined }, null, 2) + '\n');
  write(file, header + markdownTable(rows) + (notes ? `\n${notes}\n` : ''));
  return file;
}
