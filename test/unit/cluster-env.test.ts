/**
 * Where the cluster is, without flags: HADOOP_CONF_DIR (the user's, else the running stack's) for
 * HDFS, SPARK_MASTER / TFOS_LIVY_URL, else the running `tfos stack`; what `tfos stack env` prints.
 */
import { expect } from 'chai';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { clusterEnvironment, exportLines, RecordedStack, runningStack } from '../../lib/platform/cluster-env';
import { resolveLocation } from '../../lib/io/dataset-fs';
import { parseRunArgs } from '../../lib/cli/run-command';
import { tfosPaths } from '../../lib/platform/paths';
import { bootId, processStartTicks } from '../../lib/platform/process-group';
import { stackDown, stackStatus } from '../../lib/stack/stack';

function hadoopConf(dir: string, defaultFS: string, httpAddress: string): string {
  fs.mkdirSync(dir, { recursive: true });
  const site = (props: Record<string, string>) =>
    `<?xml version="1.0"?>\n<configuration>\n${Object.entries(props)
      .map(([k, v]) => `  <property><name>${k}</name><value>${v}</value></property>`)
      .join('\n')}\n</configuration>\n`;
  fs.writeFileSync(path.join(dir, 'core-site.xml'), site({ 'fs.defaultFS': defaultFS }));
  fs.writeFileSync(path.join(dir, 'hdfs-site.xml'), site({ 'dfs.namenode.http-address': httpAddress }));
  return dir;
}

describe("cluster environment: the stack (or the user's config) as every command's default", () => {
  let home: string;
  let stackConf: string;
  const module = path.resolve(__dirname, '../../../test/fixtures/modules/count-rows.js');

  function recordStack(pid: number, identity: { bootId?: string; startTicks?: number } = {}): void {
    const state: RecordedStack = {
      bootId: identity.bootId,
      services: [{ name: 'spark-master', pid, startTicks: identity.startTicks }],
      endpoints: {
        sparkMaster: 'spark://127.0.0.1:17077',
        sparkUi: 'http://127.0.0.1:18080',
        defaultFS: 'hdfs://127.0.0.1:18020',
        webhdfs: 'http://127.0.0.1:19870',
        hadoopConfDir: stackConf,
        livy: 'http://127.0.0.1:18998',
      },
    };
    fs.mkdirSync(path.join(home, 'stack'), { recursive: true });
    fs.writeFileSync(path.join(home, 'stack', 'state.json'), JSON.stringify(state));
  }

  beforeEach(() => {
    home = fs.mkdtempSync(path.join(os.tmpdir(), 'tfos-env-'));
    stackConf = hadoopConf(path.join(home, 'stack', 'hadoop-conf'), 'hdfs://127.0.0.1:18020', '127.0.0.1:19870');
  });
  afterEach(() => fs.rmSync(home, { recursive: true, force: true }));

  it('finds nothing when no stack runs and nothing is set', () => {
    const found = clusterEnvironment({ TFOS_HOME: home });
    expect(found).to.deep.equal({ stack: undefined, from: {} });
  });

  it('finds the running stack: its master, its Livy, and HDFS from the HADOOP_CONF_DIR it wrote', () => {
    recordStack(process.pid);
    const found = clusterEnvironment({ TFOS_HOME: home });
    expect(found.sparkMaster).to.equal('spark://127.0.0.1:17077');
    expect(found.livyUrl).to.equal('http://127.0.0.1:18998');
    expect(found.hdfs).to.deep.equal({ configDir: stackConf, defaultFS: 'hdfs://127.0.0.1:18020', webhdfs: 'http://127.0.0.1:19870' });
    expect(found.from.hdfs).to.contain('tfos stack');
  });

  it('a stack whose processes are gone counts as not running', () => {
    recordStack(2 ** 22 + 12345); // above Linux's pid_max: never alive
    expect(runningStack({ TFOS_HOME: home })).to.equal(undefined);
    expect(clusterEnvironment({ TFOS_HOME: home }).sparkMaster).to.equal(undefined);
  });

  it('a state file from another boot (a rebooted machine, a copied cache) names nothing running: status finds no stack, down signals nothing', async () => {
    recordStack(process.pid, { bootId: 'another-boot' });
    expect(runningStack({ TFOS_HOME: home })).to.equal(undefined);
    expect(await stackStatus(tfosPaths({ TFOS_HOME: home }))).to.equal(undefined);
    expect(await stackDown({ env: { TFOS_HOME: home } })).to.equal(false);
    expect(fs.existsSync(path.join(home, 'stack', 'state.json'))).to.equal(false);
  });

  it('a recorded pid now used by a later process counts as gone (its start time differs)', () => {
    const ticks = processStartTicks(process.pid)!;
    recordStack(process.pid, { bootId: bootId(), startTicks: ticks + 1 });
    expect(runningStack({ TFOS_HOME: home })).to.equal(undefined);
    recordStack(process.pid, { bootId: bootId(), startTicks: ticks });
    expect(runningStack({ TFOS_HOME: home })?.services[0].pid).to.equal(process.pid);
  });

  it("the user's SPARK_MASTER, TFOS_LIVY_URL, HADOOP_CONF_DIR and TFOS_WEBHDFS win over the stack", () => {
    recordStack(process.pid);
    const mine = hadoopConf(path.join(home, 'mine'), 'hdfs://nn.example:8020', '0.0.0.0:50070');
    const env = { TFOS_HOME: home, SPARK_MASTER: 'yarn', TFOS_LIVY_URL: 'http://livy.example:8998', HADOOP_CONF_DIR: mine };
    const found = clusterEnvironment(env);
    expect([found.sparkMaster, found.livyUrl]).to.deep.equal(['yarn', 'http://livy.example:8998']);
    // A wildcard bind address means the NameNode's own host.
    expect(found.hdfs).to.deep.equal({ configDir: mine, defaultFS: 'hdfs://nn.example:8020', webhdfs: 'http://nn.example:50070' });
    expect(clusterEnvironment({ ...env, TFOS_WEBHDFS: 'http://gateway:14000' }).hdfs?.webhdfs).to.equal('http://gateway:14000');
  });

  it('hdfs:///path resolves through HADOOP_CONF_DIR: its NameNode and WebHDFS endpoint', () => {
    recordStack(process.pid);
    const loc = resolveLocation('hdfs:///data/cifar10', { env: { TFOS_HOME: home } });
    expect(loc.fs.kind).to.equal('webhdfs');
    expect(loc.fs.uri(loc.path)).to.equal('hdfs://127.0.0.1:18020/data/cifar10');
    expect((loc.fs as unknown as { client: { url: string } }).client.url).to.equal('http://127.0.0.1:19870');
    // The configured NameNode named explicitly uses the configured WebHDFS endpoint too.
    const named = resolveLocation('hdfs://127.0.0.1:18020/x', { env: { TFOS_HOME: home } });
    expect((named.fs as unknown as { client: { url: string } }).client.url).to.equal('http://127.0.0.1:19870');
  });

  it('hdfs:///path with no configuration at all names what to set', () => {
    expect(() => resolveLocation('hdfs:///data/x', { env: { TFOS_HOME: home } })).to.throw(
      /hdfs:\/\/\/data\/x: no NameNode.*HADOOP_CONF_DIR.*tfos stack up/,
    );
  });

  it('`tfos stack env` prints shell exports of the running stack', () => {
    recordStack(process.pid);
    expect(exportLines(runningStack({ TFOS_HOME: home })!)).to.deep.equal([
      "export SPARK_MASTER='spark://127.0.0.1:17077'",
      `export HADOOP_CONF_DIR='${stackConf}'`,
      "export TFOS_LIVY_URL='http://127.0.0.1:18998'",
    ]);
  });

  it('tfos run with no route flags: spark-submit to the running stack, else the embedded local Spark', async () => {
    expect((await parseRunArgs([module], { TFOS_HOME: home })).options.via).to.deep.equal({ local: { conf: {} } });
    recordStack(process.pid);
    expect((await parseRunArgs([module], { TFOS_HOME: home })).options.via).to.deep.equal({ sparkSubmit: { master: undefined, conf: {} } });
    expect((await parseRunArgs([module, '--via', 'livy'], { TFOS_HOME: home })).options.via).to.deep.equal({
      livy: { url: undefined, mode: 'batch', conf: {} },
    });
  });

  it('tfos run --data reaches both input modes; --epochs needs --data; --inference needs InputMode.SPARK', async () => {
    const tf = await parseRunArgs([module, '--data', 'hdfs:///d/train', '--epochs', '3'], { TFOS_HOME: home });
    expect([tf.options.data, tf.options.epochs, tf.options.inputMode]).to.deep.equal(['hdfs:///d/train', 3, undefined]);
    const spark = await parseRunArgs([module, '--input-mode', 'spark', '--data', 'd'], { TFOS_HOME: home });
    expect([spark.options.data, spark.options.inputMode]).to.deep.equal(['d', 'spark']);
    let err = await parseRunArgs([module, '--epochs', '2'], { TFOS_HOME: home }).catch((e: Error) => e);
    expect((err as Error).message).to.contain('--epochs needs --data PATH');
    err = await parseRunArgs([module, '--inference', 'x', '--output', 'y'], { TFOS_HOME: home }).catch((e: Error) => e);
    expect((err as Error).message).to.contain('add --input-mode spark');
  });
});
