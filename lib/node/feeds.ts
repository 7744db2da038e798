/**
 * TFNode.dataFeed(ctx): one training function for both input modes.
 * InputMode.SPARK — the next feed the driver started (the run's `data`, or cluster.train() /
 * inference()), streamed by Spark into this trainer. InputMode.TENSORFLOW — this worker's shard of
 * a dataset, read by the trainer itself (see data-feed.ts).
 */
import { runtimeOf, TFNodeContext } from './runtime';
import { SparkFeed } from './spark-feed';

/** How to give a run its data, for errors of a function that asks for data where none was given. */
export const NO_DATA_HINT = 'add --data PATH to `tfos run` / the spark-submit line (TFCluster.run: { data: PATH })';

export async function sparkDataFeed(ctx: TFNodeContext): Promise<SparkFeed> {
  if (ctx.jobName === 'ps' || ctx.jobName === 'evaluator') {
    throw new Error(`TFNode.dataFeed: ${ctx.jobName} nodes get no data in InputMode.SPARK (only chief and workers are fed)`);
  }
  const rt = runtimeOf(ctx);
  const announced = await Promise.race([
    rt.nextFeed(),
    rt.shutdown.then((reason) => Promise.reject(new Error(`cluster stopped before a feed started (${reason})`))),
  ]);
  if (!announced) {
    throw new Error(
      `TFNode.dataFeed: InputMode.SPARK, but the driver fed this cluster no data: ${NO_DATA_HINT}, or call cluster.train(PATH) before cluster.shutdown()`,
    );
  }
  const feedId = announced.feedId;
  return new SparkFeed(rt.feedServer, announced, (phase) => void rt.control.send({ type: 'phase', phase, feedId }).catch(() => undefined));
}
