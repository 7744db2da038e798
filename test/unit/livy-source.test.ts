/**
 * Where `tfos setup` finds Livy's source release: TFOS_LIVY_SRC, the download cache, then
 * `../shared/vendor/` beside the repository, checked against the SHA256SUMS there; with none of
 * them, nothing (setup then falls back to Livy 0.7.1 from Maven Central).
 */
import { expect } from 'chai';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { VERSIONS } from '../../lib/platform/versions';
import { findLivySource } from '../../lib/stack/livy-server';
import { tfosPaths } from '../../lib/platform/paths';

const NAME = `apache-livy-${VERSIONS.livy.source}-src.tgz`;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('finding the Livy source release', () => {
  let root: string;
  let repo: string;
  let vendor: string;
  let env: NodeJS.ProcessEnv;
  const content = Buffer.from('not really a tarball, but bytes with a checksum');

  beforeEach(() => {
    // <root>/checkout (the repository), <root>/shared/vendor, <root>/home (TFOS_HOME).
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'tfos-livy-src-'));
    repo = path.join(root, 'checkout');
    vendor = path.join(root, 'shared', 'vendor');
    fs.mkdirSync(repo);
    fs.mkdirSync(vendor, { recursive: true });
    env = { TFOS_HOME: path.join(root, 'home') };
  });
  afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

  const paths = () => tfosPaths(env);

  it('finds nothing when no source release is anywhere (the 0.7.1 fallback applies)', () => {
    expect(findLivySource(paths(), env, repo)).to.equal(undefined);
  });

  it('finds the vendored archive beside the repository when its checksum matches SHA256SUMS', () => {
    fs.writeFileSync(path.join(vendor, NAME), content);
    fs.writeFileSync(path.join(vendor, 'SHA256SUMS'), `${'0'.repeat(64)}  other.tgz\n${sha(content)}  ${NAME}\n`);
    expect(findLivySource(paths(), env, repo)).to.equal(path.join(vendor, NAME));
  });

  it('refuses a vendored archive whose checksum differs, naming the file and both sums', () => {
    fs.writeFileSync(path.join(vendor, NAME), content);
    const wrong = 'a'.repeat(64);
    fs.writeFileSync(path.join(vendor, 'SHA256SUMS'), `${wrong}  ${NAME}\n`);
    expect(() => findLivySource(paths(), env, repo)).to.throw(`${path.join(vendor, NAME)}: sha256 ${sha(content)} does not match ${wrong}`);
  });

  it('refuses a vendored archive with no checksum line', () => {
    fs.writeFileSync(path.join(vendor, NAME), content);
    expect(() => findLivySource(paths(), env, repo)).to.throw(/no checksum for apache-livy-.*-src\.tgz in .*SHA256SUMS/);
  });

  it('prefers TFOS_LIVY_SRC, then the download cache, over the vendored copy', () => {
    fs.writeFileSync(path.join(vendor, NAME), content);
    fs.writeFileSync(path.join(vendor, 'SHA256SUMS'), `${sha(content)}  ${NAME}\n`);
    const cached = path.join(paths().downloads, NAME);
    fs.mkdirSync(path.dirname(cached), { recursive: true });
    fs.writeFileSync(cached, content);
    expect(findLivySource(paths(), env, repo)).to.equal(cached);
    const own = path.join(root, 'own-livy-src');
    fs.mkdirSync(own);
    expect(findLivySource(paths(), { ...env, TFOS_LIVY_SRC: own }, repo)).to.equal(own);
  });

  it('names a TFOS_LIVY_SRC that does not exist', () => {
    const missing = path.join(root, 'nope.tgz');
    expect(() => findLivySource(paths(), { ...env, TFOS_LIVY_SRC: missing }, repo)).to.throw(`TFOS_LIVY_SRC=${missing} does not exist`);
  });
});
