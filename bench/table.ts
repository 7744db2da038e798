/** Benchmark results as a markdown table, printed and written to bench-results/<name>.md. */
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

export function writeResults(name: string, rows: Row[], notes = ''): string {
  const dir = path.resolve(__dirname, '../../bench-results');
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${name}.md`);
  const header = `# ${name}\n\n${new Date().toISOString()} on ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, load ${os.loadavg()[0].toFixed(1)}\n\n`;
  fs.writeFileSync(file, header + markdownTable(rows) + (notes ? `\n${notes}\n` : ''));
  return file;
}
