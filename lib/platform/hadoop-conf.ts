/** Reading a Hadoop client configuration directory (HADOOP_CONF_DIR): where HDFS is. */
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface HadoopConf {
  configDir: string;
  /** hdfs://host:port or hdfs://nameservice */
  defaultFS: string;
  /** http(s)://namenode:port */
  webhdfs: string;
}

/** name → value of a Hadoop *-site.xml (tolerates <description>/<final> and any element order). */
export function readXmlProps(file: string): Record<string, string> {
  if (!fs.existsSync(file)) return {};
  const out: Record<string, string> = {};
  const text = fs.readFileSync(file, 'utf8').replace(/<!--[\s\S]*?-->/g, '');
  for (const m of text.matchAll(/<property>([\s\S]*?)<\/property>/g)) {
    const name = /<name>([\s\S]*?)<\/name>/.exec(m[1])?.[1].trim();
    const value = /<value>([\s\S]*?)<\/value>/.exec(m[1])?.[1].trim();
    if (name && value !== undefined) out[name] = value;
  }
  return out;
}

/**
 * A Hadoop client configuration (HADOOP_CONF_DIR), read-only: fs.defaultFS and the WebHDFS endpoint,
 * from core-site.xml and hdfs-site.xml.
 * The WebHDFS endpoint is the NameNode's HTTP(S) address (with HA: the first NameNode listed for
 * the nameservice of fs.defaultFS); a wildcard bind address is replaced by the NameNode's host.
 */
export function resolveHadoopConf(hadoopConfDir: string): HadoopConf {
  const core = readXmlProps(path.join(hadoopConfDir, 'core-site.xml'));
  const hdfs = readXmlProps(path.join(hadoopConfDir, 'hdfs-site.xml'));
  const defaultFS = core['fs.defaultFS'] ?? core['fs.default.name'];
  if (!defaultFS) throw new Error(`HADOOP_CONF_DIR=${hadoopConfDir}: core-site.xml has no fs.defaultFS`);
  if (!/^hdfs:\/\//.test(defaultFS))
    throw new Error(`HADOOP_CONF_DIR=${hadoopConfDir}: fs.defaultFS=${defaultFS} is not an hdfs:// file system`);
  const authority = new URL(defaultFS.replace(/^hdfs:/, 'http:')).hostname;
  const https = (hdfs['dfs.http.policy'] ?? 'HTTP_ONLY').toUpperCase() === 'HTTPS_ONLY';
  const key = https ? 'dfs.namenode.https-address' : 'dfs.namenode.http-address';
  // HA: fs.defaultFS names a nameservice, whose NameNodes are listed in dfs.ha.namenodes.<ns>.
  const haIds =
    hdfs[`dfs.ha.namenodes.${authority}`]
      ?.split(',')
      .map((s) => s.trim())
      .filter(Boolean) ?? [];
  let address: string | undefined;
  let nnHost = authority;
  for (const id of haIds) {
    address = hdfs[`${key}.${authority}.${id}`];
    if (!address) continue;
    const rpc = hdfs[`dfs.namenode.rpc-address.${authority}.${id}`];
    if (rpc) nnHost = rpc.replace(/:\d+$/, '');
    break;
  }
  address ??= hdfs[`${key}.${authority}`] ?? hdfs[key] ?? `${nnHost}:${https ? 9871 : 9870}`;
  const webhdfs = `${https ? 'https' : 'http'}://${address.replace(/^0\.0\.0\.0(?=:)/, nnHost)}`;
  return { configDir: path.resolve(hadoopConfDir), defaultFS, webhdfs };
}

/**
 * The YARN ResourceManager's host from HADOOP_CONF_DIR/yarn-site.xml (`--master yarn` names no
 * host), or undefined when the directory has no YARN configuration.
 */
export function yarnResourceManagerHost(hadoopConfDir: string): string | undefined {
  const yarn = readXmlProps(path.join(hadoopConfDir, 'yarn-site.xml'));
  const address = yarn['yarn.resourcemanager.address'];
  const host = address ? address.replace(/:\d+$/, '') : yarn['yarn.resourcemanager.hostname'];
  return host && host !== '0.0.0.0' ? host : undefined;
}
