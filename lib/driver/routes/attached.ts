/**
 * Attached route: the Spark application already exists. A hand-typed `spark-submit ...
 * tfos_launcher.py <module> ...` made the launcher the Spark driver program, and the launcher
 * started this Node process (`tfos run --attach-fd N --attach-master URL ...`) to be the driver
 * side. Submitting is then only telling the launcher where the control server listens (one JSON
 * line on the pipe it passed as fd N); the launcher reads the one-time token file, exchanges it and serves the cluster.
 * It writes "exit <code>" on our stdin when its part has ended; stdin closing means it is gone.
 */
import * as fs from 'node:fs';
import { AppExit, LaunchPlan, SparkRoute, SubmittedApp } from './route';

export interface AttachedOptions {
  /** Write end of the launcher's handshake pipe. */
  fd: number;
  /** The SparkContext's master, for messages and the control server's bind address. */
  master: string;
  /** The application's spark.archives (spark-submit --archives), already shipped to executors. */
  archives?: string;
}

export class AttachedRoute implements SparkRoute {
  readonly name = 'attached' as const;

  constructor(
    private readonly opts: AttachedOptions,
    private readonly input: NodeJS.ReadableStream = process.stdin,
  ) {}

  async submit(plan: LaunchPlan): Promise<SubmittedApp> {
    // What the application already has needs no setting; anything else cannot be set any more.
    const settings = Object.keys(plan.conf).filter(
      (k) => !(k === 'spark.archives' && this.opts.archives?.split(',').includes(plan.conf[k])),
    );
    if (settings.length) {
      throw new Error(
        `the Spark application already runs (spark-submit typed by hand): pass ${settings.map((k) => `--conf ${k}=${plan.conf[k]}`).join(' ')} to spark-submit instead`,
      );
    }
    const exited = new Promise<AppExit>((resolve) => {
      let text = '';
      this.input.on('data', (chunk: Buffer) => (text += chunk.toString('utf8')));
      this.input.once('end', () => {
        const code = /exit (\d+)/.exec(text)?.[1];
        resolve({
          ok: code === '0',
          detail:
            code === undefined ? 'the launcher (the Spark driver program) went away' : `the launcher ended its cluster with code ${code}`,
          logTail: '',
        });
      });
      this.input.resume();
    });
    try {
      fs.writeSync(this.opts.fd, `${JSON.stringify({ controlUrl: plan.controlUrl, tokenFile: plan.tokenFile })}\n`);
      fs.closeSync(this.opts.fd);
    } catch (err) {
      throw new Error(
        `cannot reach the launcher on fd ${this.opts.fd} (--attach-fd is for the launcher's own use): ${(err as Error).message}`,
      );
    }
    return {
      describe: `the Spark application of this spark-submit (${this.opts.master})`,
      exited,
      // The launcher stops its cluster on the driver's 'shutdown' command and owns the application.
      kill: async () => undefined,
    };
  }
}
