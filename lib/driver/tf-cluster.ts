/** Driver-side entry point: reserves Spark executors as TF nodes and drives them. */
export const TFCluster = {
  async run(): Promise<never> {
    throw new Error('TFCluster.run is not implemented yet');
  },
};
