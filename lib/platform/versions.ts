/**
 * Every version the project provisions or expects, in one table, so setup, the runtime's
 * "is it provisioned?" checks, docs and tests agree.
 */
export const VERSIONS = {
  spark: '3.5.8',
  scala: '2.12',
  hadoop: '3.4.2',
  livy: {
    /** Built from the source release (sessions and batches); Maven Central does not publish it. */
    source: '0.9.0-incubating',
    /** The newest Livy server on Maven Central: the fallback (batches only, no Scala 2.12 REPL). */
    central: '0.7.1-incubating',
  },
  tensorflowWheel: '2.15.1',
  /** @tensorflow/tfjs-node in package.json; `tfos setup --gpu` installs @tensorflow/tfjs-node-gpu of the same version. */
  tfjsNode: '4.22.0',
  libtensorflowExpectedByTfjs: '2.9.1',
  pyarrow: '17.0.0',
  pandas: '2.2.3',
  numpy: '1.26.4',
  /** `tfos setup --notebook`: Jupyter from PyPI into Spark's Python environment, tslab from npm. */
  notebook: { notebook: '7.6.5', nbclient: '0.11.0', nbconvert: '7.17.2', tslab: '1.0.22' },
} as const;
