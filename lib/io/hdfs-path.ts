/**
 * What an HDFS path may look like before any request is made with it. WebHDFS and Hadoop resolve
 * `.` and `..` segments on their side, so `/data/../user/x` would quietly touch another tree;
 * a path taken from a URI must also decode cleanly. Such paths are refused, naming them, rather
 * than normalised.
 */

/** A TypeError: the path is a bad argument, refused before any request. */
export class UnsafePathError extends TypeError {
  constructor(
    readonly path: string,
    reason: string,
  ) {
    super(`refusing the path ${JSON.stringify(path)}: ${reason}`);
    this.name = 'UnsafePathError';
  }
}

/**
 * The checked absolute path: `raw` is the path part of `original` (the user's string, for the
 * message). With `decode`, percent escapes are decoded first (a URI's path); an escape that does
 * not decode, or that decodes to '/', is refused. Repeated slashes collapse, as HDFS does.
 */
export function checkedHdfsPath(raw: string, original = raw, opts: { decode?: boolean } = {}): string {
  let p = raw;
  if (opts.decode) {
    if (/%(?![0-9A-Fa-f]{2})/.test(p)) throw new UnsafePathError(original, "it has a '%' that is not a valid escape");
    if (/%2f/i.test(p)) throw new UnsafePathError(original, "an escaped '/' (%2F) would change where the path points");
    try {
      p = decodeURIComponent(p);
    } catch {
      throw new UnsafePathError(original, 'its escapes do not decode to UTF-8');
    }
  }
  if (!p.startsWith('/')) throw new UnsafePathError(original, 'HDFS paths must be absolute');
  if (p.includes('\0')) throw new UnsafePathError(original, 'it contains a NUL character');
  const segments = p.split('/').filter((s) => s !== '');
  if (segments.some((s) => s === '.' || s === '..')) throw new UnsafePathError(original, "'.' and '..' segments are not allowed");
  return '/' + segments.join('/');
}

/** A path relative to a dataset directory (from a manifest): no absolute paths, no way out. */
export function checkedRelativePath(rel: string, where: string): string {
  if (
    typeof rel !== 'string' ||
    rel === '' ||
    rel.startsWith('/') ||
    rel.includes('\0') ||
    rel.split('/').some((s) => s === '.' || s === '..' || s === '')
  ) {
    throw new UnsafePathError(String(rel), `${where}: must be a plain relative path inside the dataset`);
  }
  return rel;
}
