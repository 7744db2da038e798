/** How training data reaches the trainers (same meaning as TensorFlowOnSpark's InputMode). */
export enum InputMode {
  /** Trainers read their own shard of the dataset from HDFS (WebHDFS). */
  TENSORFLOW = 'tensorflow',
  /** Spark reads the dataset and streams Arrow record batches into the trainers. */
  SPARK = 'spark',
}
