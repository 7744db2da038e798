/** `tfos pack`: archive the user's project for executors that have no copy of it. */
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { packProject } from '../driver/pack';

export const PACK_USAGE = `tfos pack [--project DIR] [--out FILE.tgz] [--with-node] [--exclude PATTERN ...] [--include-env-files]`;

export async function packCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      project: { type: 'string' },
      out: { type: 'string' },
      'with-node': { type: 'boolean' },
      exclude: { type: 'string', multiple: true },
      // .env*, .npmrc: left out unless asked for (they usually hold credentials)
      'include-env-files': { type: 'boolean' },
    },
  });
  const project = path.resolve(values.project ?? '.');
  const out = values.out ?? `${path.basename(project)}.tfos.tgz`;
  const res = await packProject({
    projectDir: project,
    out,
    withNode: values['with-node'],
    exclude: values.exclude,
    includeEnvFiles: values['include-env-files'],
  });
  console.log(`${res.archive} (${(res.bytes / 1048576).toFixed(1)} MiB${res.withNode ? ', with Node' : ''})`);
  console.log(`use it with: tfos run <module> --archive ${res.archive} --project ${project}  (or upload it to HDFS and pass that URI)`);
  return 0;
}
