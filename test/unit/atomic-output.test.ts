/**
 * Replacing an output (a dataset with --overwrite) never loses the old copy and never nests the
 * new one inside a directory: commitDirectory over a file system with HDFS's rename semantics
 * (a rename into an existing directory moves the source inside it).
 */
import { expect } from 'chai';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { commitDirectory, LocalFs } from '../../lib/io/dataset-fs';
import { rejection } from '../support/rejection';

/** LocalFs whose rename behaves as HDFS's, with a hook that runs before each rename. */
class HdfsLikeFs extends LocalFs {
  beforeRename?: (from: string, to: string) => void;
  failRename?: (from: string, to: string) => boolean;
  override async rename(from: string, to: string): Promise<void> {
    this.beforeRename?.(from, to);
    if (this.failRename?.(from, to)) throw new Error(`rename to ${to} failed`);
    const st = await this.stat(to);
    await super.rename(from, st?.type === 'dir' ? path.join(to, path.basename(from)) : to);
  }
}

describe('commitDirectory: atomic replacement of an output directory', () => {
  let root: string;
  const write = (dir: string, text: string) => {
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'data'), text);
  };
  const read = (dir: string) => fs.readFileSync(path.join(dir, 'data'), 'utf8');
  beforeEach(() => (root = fs.mkdtempSync(path.join(os.tmpdir(), 'tfos-commit-'))));
  afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

  it('replaces DEST and removes the old copy only afterwards', async () => {
    write(path.join(root, 'dest'), 'old');
    write(path.join(root, '.dest.tmp-1'), 'new');
    await commitDirectory(new HdfsLikeFs(), path.join(root, '.dest.tmp-1'), path.join(root, 'dest'), true);
    expect(read(path.join(root, 'dest'))).to.equal('new');
    expect(fs.readdirSync(root)).to.deep.equal(['dest']);
  });

  it('puts the old copy back when the new one cannot be moved in', async () => {
    const fsys = new HdfsLikeFs();
    write(path.join(root, 'dest'), 'old');
    write(path.join(root, '.dest.tmp-1'), 'new');
    fsys.failRename = (from) => from.endsWith('.dest.tmp-1');
    const err = await rejection(commitDirectory(fsys, path.join(root, '.dest.tmp-1'), path.join(root, 'dest'), true));
    expect(err.message).to.match(/rename to .*dest failed/);
    expect(read(path.join(root, 'dest'))).to.equal('old');
    expect(fs.readdirSync(root).sort()).to.deep.equal(['.dest.tmp-1', 'dest']);
  });

  it('never nests the new copy in a DEST that appeared meanwhile; leaves that DEST alone', async () => {
    const fsys = new HdfsLikeFs();
    write(path.join(root, '.dest.tmp-1'), 'new');
    fsys.beforeRename = (from, to) => {
      if (to === path.join(root, 'dest') && from.endsWith('.dest.tmp-1')) write(path.join(root, 'dest'), 'someone else');
    };
    const err = await rejection(commitDirectory(fsys, path.join(root, '.dest.tmp-1'), path.join(root, 'dest'), false));
    expect(err.message).to.match(/dest appeared while the new copy was being moved in; it was left alone/);
    expect(read(path.join(root, 'dest'))).to.equal('someone else');
    expect(fs.readdirSync(path.join(root, 'dest'))).to.deep.equal(['data']);
    expect(read(path.join(root, '.dest.tmp-1'))).to.equal('new');
  });
});
