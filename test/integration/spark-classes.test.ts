/**
 * Spark's class-data archive (lib/stack/spark-classes.ts): after `tfos setup` the provisioned Spark
 * has one, and the JVMs our routes start map it, with a driver's classpath (HADOOP_CONF_DIR
 * appended) as with an executor's. Start-up speed itself is measured by `npm run bench -- startup`.
 */
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { silentLogger } from '../../lib/platform/log';
import { resolveSpark, sparkClassArchive } from '../../lib/platform/spark';
import { provisionSparkClassArchive } from '../../lib/stack/spark-classes';

describe('Spark’s class-data archive', function () {
  this.timeout(300_000);

  it('exists once Spark is provisioned, and driver and executor JVMs map it', async () => {
    const install = resolveSpark();
    // `tfos setup` made it already (npm test provisions first); this is then a no-op.
    const archive = (await provisionSparkClassArchive(install, silentLogger)) ?? '(none)';
    expect(archive).to.match(/spark-classes\.jsa$/);
    expect(sparkClassArchive(install)).to.equal(archive);
    const jars = `${path.join(install.sparkHome, 'conf')}:${path.join(install.sparkHome, 'jars', '*')}`;
    for (const cp of [jars, `${jars}:/etc/hadoop/conf/`]) {
      // -Xshare:on refuses to start rather than run without the archive: a mismatch fails here.
      const out = execFileSync(
        path.join(install.javaHome, 'bin', 'java'),
        [`-XX:SharedArchiveFile=${archive}`, '-Xshare:on', '-Xlog:cds=info', '-cp', cp, '-version'],
        { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] },
      );
      expect(out).to.match(new RegExp(`Opened archive ${archive.replace(/[.]/g, '\\.')}`));
    }
  });
});
