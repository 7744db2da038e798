/** Dialing a peer with retries until a deadline (the peer may not be listening or serving yet). */
import { dialOnce, DialOptions, Established } from './auth';
import { DistributedError, peerName, RetryableError } from './peers';
import { sleep } from '../../platform/sleep';

/**
 * Retries while the failure is retryable (refused, reset, no answer: a peer that has not called
 * startClusterServer yet accepts the TCP connection but never answers). Gives up at `deadline`,
 * at once on an authentication failure or a refusal, or when `cancelled()` returns an error.
 */
export async function dialWithRetry<T>(
  o: DialOptions,
  deadline: number,
  adopt: (est: Established) => T,
  cancelled: () => Error | undefined,
): Promise<T> {
  let delay = 25;
  let step = Math.min(500, o.stepTimeoutMs);
  let last: Error | undefined;
  const started = Date.now();
  for (;;) {
    const stop = cancelled();
    if (stop) throw stop;
    try {
      return await dialOnce({ ...o, stepTimeoutMs: step }, adopt);
    } catch (err) {
      if (!(err instanceof RetryableError)) throw err;
      last = err;
    }
    if (Date.now() + delay >= deadline) {
      const name = peerName(o.target);
      throw new DistributedError(
        `could not connect to ${name} within ${((Date.now() - started) / 1000).toFixed(1)} s (last error: ${last.message})`,
        name,
      );
    }
    await sleep(delay, { keepAlive: false });
    delay = Math.min(delay * 2, 500);
    step = Math.min(step * 2, o.stepTimeoutMs);
  }
}
