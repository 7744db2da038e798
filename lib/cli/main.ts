/**
 * The `tfos` command line: thin wrappers over the library, one sub-command per capability.
 * Returns the process exit code; errors propagate to bin/tfos.js, which prints them.
 */
import { parseArgs } from 'node:util';
import { stderrLogger } from '../platform/log';
import { setup } from '../stack/setup';
import { dataCommand, DATA_USAGE } from './data-command';
import { packCommand, PACK_USAGE } from './pack-command';
import { runCommand, RUN_USAGE } from './run-command';
import { submitCommand, SUBMIT_USAGE } from './submit-command';
import { notebookCommand, NOTEBOOK_USAGE } from './notebook-command';
import { provisionNotebook } from '../stack/notebook';
import { tfosPaths } from '../platform/paths';
import { exportLines, runningStack } from '../platform/cluster-env';
import { allHealthy, stackDown, stackStatus, stackUp } from '../stack/stack';
import { Role, ROLES, runRole } from '../stack/roles';

const USAGE = `usage:
  tfos setup [--skip-tensorflow] [--notebook] [--gpu]  provision Spark, Hadoop, Livy and native TensorFlow (idempotent);
                                          --gpu: also tfjs-node-gpu on PyPI's CUDA TensorFlow (about 2.4 GB; TFOS_TFJS=gpu)
                                          --notebook: also Jupyter (PyPI) and the tslab TypeScript kernel (npm)
  tfos stack up [--workers N]             start HDFS, a Spark master + N workers and Livy on loopback
  tfos stack up --hosts N                 the same on N network namespaces (host a: master, NameNode, Livy;
                                          the others: a worker + DataNode each); needs root (ip netns)
  tfos stack up ... --yarn                also a YARN ResourceManager (beside the master) and a NodeManager per
                                          worker host; Livy then submits to YARN
  tfos stack role ROLE [--self HOST] [--master HOST] [--namenode HOST] [--resourcemanager HOST]
                                          run one service of the stack in the foreground (containers, one
                                          machine per role): spark-master, spark-worker, namenode, datanode,
                                          livy, resourcemanager, nodemanager
  tfos stack status [--json]              show the local stack's endpoints and health
  tfos stack env                          print the running stack's exports for a shell: eval "$(tfos stack env)"
                                          (SPARK_MASTER, HADOOP_CONF_DIR, TFOS_LIVY_URL; every command finds
                                          the running stack without them, they are for spark-submit, pyspark...)
  tfos stack down                         stop every process of the local stack
  ${RUN_USAGE}
  ${SUBMIT_USAGE}
  ${NOTEBOOK_USAGE}
  ${PACK_USAGE}
  ${DATA_USAGE}
environment: TFOS_HOME (cache, default ~/.cache/tfjs-on-spark), SPARK_HOME, SPARK_MASTER, HADOOP_CONF_DIR, TFOS_LIVY_URL,
  TFOS_WEBHDFS (without them: the running tfos stack)`;

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'setup':
      return cmdSetup(rest);
    case 'stack':
      return cmdStack(rest);
    case 'run':
      return runCommand(rest);
    case 'pack':
      return packCommand(rest);
    case 'submit-command':
      return submitCommand(rest);
    case 'data':
      return dataCommand(rest);
    case 'notebook':
      return notebookCommand(rest);
    case undefined:
    case '-h':
    case '--help':
    case 'help':
      console.log(USAGE);
      return command === undefined ? 2 : 0;
    default:
      throw new Error(`unknown command '${command}'\n${USAGE}`);
  }
}

async function cmdSetup(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: { 'skip-tensorflow': { type: 'boolean' }, notebook: { type: 'boolean' }, gpu: { type: 'boolean' } },
  });
  const res = await setup({ skipTensorflow: values['skip-tensorflow'], gpu: values.gpu });
  const notebook = values.notebook ? await provisionNotebook(tfosPaths(), res.spark, stderrLogger) : undefined;
  console.log(
    [
      `setup complete in ${res.seconds.toFixed(1)} s (cache: ${res.home})`,
      `  SPARK_HOME   ${res.spark.sparkHome} (${res.spark.source})`,
      `  python       ${res.spark.python}`,
      `  hadoop       ${res.hadoop}`,
      `  livy         ${res.livy}`,
      `  tfjs-node    backend=${res.tensorflow.backend} (${res.tensorflow.source}; fused ops and graph steps ${res.tensorflow.patched ? 'reachable' : 'off: unpatched binding'})`,
      ...(res.gpu
        ? [
            `  tfjs-node-gpu backend=${res.gpu.backend} (GPU build, ${res.gpu.source}; fused ops and graph steps ${res.gpu.patched ? 'reachable' : 'off: unpatched binding'}; trainers use it with TFOS_TFJS=gpu: ${res.gpu.packageDir})`,
          ]
        : []),
      ...(notebook ? [`  jupyter      ${notebook.jupyter} (kernel: ${notebook.kernelName}, JUPYTER_PATH=${notebook.jupyterPath})`] : []),
    ].join('\n'),
  );
  return 0;
}

async function cmdStack(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  switch (sub) {
    case 'up': {
      const { values } = parseArgs({
        args: rest,
        options: { workers: { type: 'string' }, hosts: { type: 'string' }, yarn: { type: 'boolean' } },
      });
      const workers = values.workers === undefined ? undefined : Number(values.workers);
      if (workers !== undefined && (!Number.isInteger(workers) || workers < 1)) {
        throw new Error(`--workers must be a positive integer, got '${values.workers}'`);
      }
      const hosts = values.hosts === undefined ? undefined : Number(values.hosts);
      if (hosts !== undefined && (!Number.isInteger(hosts) || hosts < 3)) {
        throw new Error(`--hosts must be an integer >= 3, got '${values.hosts}'`);
      }
      if (hosts !== undefined && workers !== undefined)
        throw new Error('--hosts N gives one worker per host after the first: leave out --workers');
      const status = await stackUp({ workers, hosts, yarn: values.yarn, log: stderrLogger });
      printStatus(status);
      return 0;
    }
    case 'status': {
      const { values } = parseArgs({ args: rest, options: { json: { type: 'boolean' } } });
      const status = await stackStatus();
      if (values.json) {
        console.log(JSON.stringify(status ?? null));
      } else if (!status) {
        console.log('no local stack is running (start one with: tfos stack up)');
      } else {
        printStatus(status);
      }
      return status && allHealthy(status) ? 0 : 1;
    }
    case 'env': {
      const stack = runningStack();
      if (!stack) throw new Error('no local stack is running (start one with: tfos stack up)');
      console.log(exportLines(stack).join('\n'));
      return 0;
    }
    case 'role': {
      const [role, ...more] = rest;
      const { values } = parseArgs({
        args: more,
        options: {
          self: { type: 'string' },
          master: { type: 'string' },
          namenode: { type: 'string' },
          resourcemanager: { type: 'string' },
          'worker-cores': { type: 'string' },
        },
      });
      if (!role || !(role in ROLES)) throw new Error(`tfos stack role needs one of ${Object.keys(ROLES).join(', ')}, got '${role ?? ''}'`);
      return runRole(
        role as Role,
        {
          self: values.self ?? process.env.TFOS_SELF,
          master: values.master,
          namenode: values.namenode,
          resourcemanager: values.resourcemanager,
          workerCores: values['worker-cores'] === undefined ? undefined : Number(values['worker-cores']),
        },
        stderrLogger,
      );
    }
    case 'down': {
      const stopped = await stackDown({ log: stderrLogger });
      console.log(stopped ? 'stack stopped' : 'no local stack was running');
      return 0;
    }
    default:
      throw new Error(`unknown stack command '${sub ?? ''}': expected up, status, env, role or down`);
  }
}

function printStatus(s: NonNullable<Awaited<ReturnType<typeof stackStatus>>>): void {
  const mark = (ok: boolean) => (ok ? 'healthy' : 'NOT HEALTHY');
  console.log(
    [
      `spark  ${s.spark.master}  ui ${s.spark.ui}  workers ${s.spark.workers}  ${mark(s.spark.healthy)}`,
      `hdfs   ${s.hdfs.defaultFS}  webhdfs ${s.hdfs.webhdfs}  ${mark(s.hdfs.healthy)}`,
      `livy   ${s.livy.url}  ${mark(s.livy.healthy)}`,
      ...(s.yarn ? [`yarn   ${s.yarn.resourceManager}  nodemanagers ${s.yarn.nodeManagers}  ${mark(s.yarn.healthy)}`] : []),
      ...(s.hosts ?? []).map((h) => `host ${h.name}  ${h.address}  ${h.roles.join(', ')}`),
    ].join('\n'),
  );
}
