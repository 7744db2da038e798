/**
 * The runtime never installs anything: when what `tfos setup` provisions is missing, it stops at
 * once with this error instead of spending minutes on pip or Maven behind the user's back.
 */
export class NotProvisionedError extends Error {
  constructor(
    /** What is missing, e.g. "Spark's Python environment". */
    readonly what: string,
    /** Where it was looked for. */
    readonly where: string,
    detail = '',
  ) {
    super(`${what} is not provisioned (${where}${detail ? `: ${detail}` : ''}); run \`tfos setup\` first`);
    this.name = 'NotProvisionedError';
  }
}
