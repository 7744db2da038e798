/**
 * The one sleep. By default its timer keeps the process alive, as an awaited pause in a loop
 * must; `keepAlive: false` is for waits raced against something else (a 20 s grace period that
 * should not hold a finished process open).
 */
export function sleep(ms: number, opts: { keepAlive?: boolean } = {}): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, Math.max(0, ms));
    if (opts.keepAlive === false) timer.unref();
  });
}
