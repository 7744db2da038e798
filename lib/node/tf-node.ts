/** Node-side API used inside the user's training function. */
export const TFNode = {
  async startClusterServer(): Promise<never> {
    throw new Error('TFNode.startClusterServer is not implemented yet');
  },
};
