/** Progress lines for provisioning and the stack: to stderr, so `--json` output on stdout stays clean. */
export type Logger = (line: string) => void;

export const stderrLogger: Logger = (line) => process.stderr.write(`[tfos] ${line}\n`);
export const silentLogger: Logger = () => {};
