/**
 * Which Spark JVMs get the quick-start flags (lib/driver/routes/route.ts): C1 and the serial
 * collector only where no data work runs, Spark's class archive wherever it is given.
 */
import { expect } from 'chai';
import { quickStartJvmConf } from '../../lib/driver/routes/route';
import { QUICK_START_JVM_OPTIONS } from '../../lib/platform/spark';

describe('quick-start JVM flags', () => {
  it('the driver and executors that only supervise trainers start with C1 and the serial collector', () => {
    expect(quickStartJvmConf({ local: false, feeds: false })).to.deep.equal({
      'spark.driver.extraJavaOptions': QUICK_START_JVM_OPTIONS,
      'spark.executor.extraJavaOptions': QUICK_START_JVM_OPTIONS,
    });
  });

  it('executors that feed data (InputMode.SPARK) keep the optimizing compiler; so does a local driver, which is its own executor', () => {
    expect(quickStartJvmConf({ local: false, feeds: true })).to.deep.equal({ 'spark.driver.extraJavaOptions': QUICK_START_JVM_OPTIONS });
    expect(quickStartJvmConf({ local: true, feeds: true })).to.deep.equal({});
    expect(quickStartJvmConf({ local: true, feeds: false })).to.deep.equal({ 'spark.driver.extraJavaOptions': QUICK_START_JVM_OPTIONS });
  });

  it('every JVM maps Spark’s class archive when there is one, feeding or not', () => {
    const conf = quickStartJvmConf({ local: false, feeds: true, archive: '/cache/spark-classes.jsa' });
    expect(conf).to.deep.equal({
      'spark.driver.extraJavaOptions': `${QUICK_START_JVM_OPTIONS} -XX:SharedArchiveFile=/cache/spark-classes.jsa`,
      'spark.executor.extraJavaOptions': '-XX:SharedArchiveFile=/cache/spark-classes.jsa',
    });
  });
});
