/**
 * The binding patch (patches/tfjs-node-binding.patch, lib/stack/binding-patch.ts): it applies
 * to the tfjs-node this project installs, applying twice changes nothing, and a source it does
 * not fit is left untouched with an error naming the file and the hunk.
 */
import { expect } from 'chai';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { applyPatch, BINDING_PATCH_FILE, BindingPatchError, parseUnifiedDiff } from '../../lib/stack/binding-patch';

const SOURCE = 'binding/tfjs_backend.cc';
const tfjsNodeDir = path.dirname(require.resolve('@tensorflow/tfjs-node/package.json'));
const patchText = fs.readFileSync(BINDING_PATCH_FILE, 'utf8');

/** A package directory holding `text` as the binding source. */
function packageWith(text: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tfos-binding-patch-'));
  fs.mkdirSync(path.join(dir, 'binding'));
  fs.writeFileSync(path.join(dir, SOURCE), text);
  return dir;
}

/** The installed binding source as tfjs-node ships it (the patch reversed, if setup applied it already). */
function pristineSource(): string {
  let text = fs.readFileSync(path.join(tfjsNodeDir, SOURCE), 'utf8');
  for (const h of parseUnifiedDiff(patchText)[0].hunks) text = text.replace(h.after.join('\n') + '\n', h.before.join('\n') + '\n');
  return text;
}

describe('tfjs-node binding patch', () => {
  const dirs: string[] = [];
  const tmpPackage = (text: string) => {
    const d = packageWith(text);
    dirs.push(d);
    return d;
  };
  after(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

  it('is a unified diff of the binding source, with list(string) and list(type) attribute hunks', () => {
    const files = parseUnifiedDiff(patchText);
    expect(files.map((f) => f.file)).to.deep.equal([SOURCE]);
    const added = files[0].hunks.flatMap((h) => h.after).join('\n');
    expect(added).to.include('TFE_OpSetAttrStringList').and.include('TFE_OpSetAttrTypeList');
  });

  it("applies to the installed tfjs-node's binding, and applying again changes nothing", () => {
    const pristine = pristineSource();
    const dir = tmpPackage(pristine);
    expect(applyPatch(dir, patchText)).to.equal('applied');
    const patched = fs.readFileSync(path.join(dir, SOURCE), 'utf8');
    expect(patched).to.include('TFE_OpSetAttrStringList');
    // Only additions: each hunk's old text is its new text less the added lines.
    for (const h of parseUnifiedDiff(patchText)[0].hunks) expect(h.after.filter((l) => h.before.includes(l))).to.deep.equal(h.before);
    expect(applyPatch(dir, patchText)).to.equal('already-applied');
    expect(fs.readFileSync(path.join(dir, SOURCE), 'utf8')).to.equal(patched);
  });

  it('fails loudly on a source it does not fit, naming the file and hunk, and writes nothing', () => {
    const changed = pristineSource().replace('case TF_ATTR_STRING: {', 'case TF_ATTR_STRING:  {');
    const dir = tmpPackage(changed);
    expect(() => applyPatch(dir, patchText))
      .to.throw(BindingPatchError)
      .with.property('message')
      .that.matches(/tfjs_backend\.cc: hunk at patch line \d+ matches nothing \(another tfjs-node version\?\)/);
    expect(fs.readFileSync(path.join(dir, SOURCE), 'utf8')).to.equal(changed);
    expect(() => applyPatch(path.join(dir, 'nowhere'), patchText)).to.throw(
      BindingPatchError,
      /nowhere\/binding\/tfjs_backend\.cc: cannot read it \(ENOENT\)/,
    );
  });

  it('refuses a half-applied source instead of guessing', () => {
    const [first] = parseUnifiedDiff(patchText)[0].hunks;
    const half = pristineSource().replace(first.before.join('\n') + '\n', first.after.join('\n') + '\n');
    const dir = tmpPackage(half);
    expect(() => applyPatch(dir, patchText)).to.throw(BindingPatchError, /partly applied \(1 hunks applied, 1 not\)/);
    expect(fs.readFileSync(path.join(dir, SOURCE), 'utf8')).to.equal(half);
  });

  it('replaces the file by rename: a hard-linked copy elsewhere keeps the original', () => {
    const dir = tmpPackage(pristineSource());
    const twin = path.join(dir, 'twin.cc');
    fs.linkSync(path.join(dir, SOURCE), twin);
    applyPatch(dir, patchText);
    expect(fs.readFileSync(twin, 'utf8')).to.equal(pristineSource());
  });
});
