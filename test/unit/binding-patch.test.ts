/**
 * The binding patch (patches/tfjs-node-binding.patch, lib/stack/binding-patch.ts): it applies
 * to the tfjs-node this project installs, applying twice changes nothing, a source patched by an
 * earlier version of it is completed, and a source it does not fit is left untouched with an
 * error naming the file and the hunk.
 */
import { expect } from 'chai';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { applyPatch, BINDING_PATCH_FILE, BindingPatchError, parseUnifiedDiff } from '../../lib/stack/binding-patch';

const SOURCE = 'binding/tfjs_backend.cc';
const FILES = ['binding/tfjs_backend.h', SOURCE, 'binding/tfjs_binding.cc'];
const tfjsNodeDir = path.dirname(require.resolve('@tensorflow/tfjs-node/package.json'));
const patchText = fs.readFileSync(BINDING_PATCH_FILE, 'utf8');
const hunksOf = (file: string) => parseUnifiedDiff(patchText).find((f) => f.file === file)!.hunks;

/** A package directory holding the binding sources `texts` (file → text). */
function packageWith(texts: Record<string, string>): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tfos-binding-patch-'));
  fs.mkdirSync(path.join(dir, 'binding'));
  for (const [file, text] of Object.entries(texts)) fs.writeFileSync(path.join(dir, file), text);
  return dir;
}

/** An installed binding source as tfjs-node ships it (the patch reversed, if setup applied it already). */
function pristine(file: string): string {
  let text = fs.readFileSync(path.join(tfjsNodeDir, file), 'utf8');
  for (const h of hunksOf(file)) text = text.replace(h.after.join('\n') + '\n', h.before.join('\n') + '\n');
  return text;
}
const pristineSources = () => Object.fromEntries(FILES.map((f) => [f, pristine(f)]));
const read = (dir: string) => Object.fromEntries(FILES.map((f) => [f, fs.readFileSync(path.join(dir, f), 'utf8')]));

describe('tfjs-node binding patch', () => {
  const dirs: string[] = [];
  const tmpPackage = (texts: Record<string, string>) => {
    const d = packageWith(texts);
    dirs.push(d);
    return d;
  };
  after(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

  it('is a unified diff of the binding sources: list attributes and graph functions', () => {
    const files = parseUnifiedDiff(patchText);
    expect(files.map((f) => f.file)).to.deep.equal(FILES);
    const added = files.flatMap((f) => f.hunks.flatMap((h) => h.after)).join('\n');
    expect(added).to.include('TFE_OpSetAttrStringList').and.include('TFE_OpSetAttrTypeList');
    expect(added).to.include('TFE_ContextAddFunctionDef').and.include('TF_GetAllOpList').and.include('"addFunctionDef"');
  });

  it("applies to the installed tfjs-node's binding, and applying again changes nothing", () => {
    const dir = tmpPackage(pristineSources());
    expect(applyPatch(dir, patchText)).to.equal('applied');
    const patched = read(dir);
    expect(patched[SOURCE]).to.include('TFE_OpSetAttrStringList').and.include('TFE_ContextAddFunctionDef');
    // Only additions: each hunk's old lines come, in order, among its new lines.
    for (const f of parseUnifiedDiff(patchText))
      for (const h of f.hunks) {
        let k = 0;
        for (const l of h.after) if (k < h.before.length && l === h.before[k]) k++;
        expect(k, `${f.file}, hunk at patch line ${h.line}`).to.equal(h.before.length);
      }
    expect(applyPatch(dir, patchText)).to.equal('already-applied');
    expect(read(dir)).to.deep.equal(patched);
  });

  it('fails loudly on a source it does not fit, naming the file and hunk, and writes nothing', () => {
    const changed = { ...pristineSources(), [SOURCE]: pristine(SOURCE).replace('case TF_ATTR_STRING: {', 'case TF_ATTR_STRING:  {') };
    const dir = tmpPackage(changed);
    expect(() => applyPatch(dir, patchText))
      .to.throw(BindingPatchError)
      .with.property('message')
      .that.matches(/tfjs_backend\.cc: hunk at patch line \d+ matches nothing \(another tfjs-node version\?\)/);
    expect(read(dir)).to.deep.equal(changed);
    expect(() => applyPatch(path.join(dir, 'nowhere'), patchText)).to.throw(
      BindingPatchError,
      /nowhere\/binding\/tfjs_backend\.h: cannot read it \(ENOENT\)/,
    );
  });

  it('completes a source patched by an earlier version of the patch (list attributes only)', () => {
    // The earlier patch: the two attribute hunks of tfjs_backend.cc.
    const [strings, types] = hunksOf(SOURCE);
    const earlier = { ...pristineSources() };
    for (const h of [strings, types]) earlier[SOURCE] = earlier[SOURCE].replace(h.before.join('\n') + '\n', h.after.join('\n') + '\n');
    const dir = tmpPackage(earlier);
    expect(applyPatch(dir, patchText)).to.equal('applied');
    const whole = tmpPackage(pristineSources());
    applyPatch(whole, patchText);
    expect(read(dir)).to.deep.equal(read(whole));
  });

  it('replaces the file by rename: a hard-linked copy elsewhere keeps the original', () => {
    const dir = tmpPackage(pristineSources());
    const twin = path.join(dir, 'twin.cc');
    fs.linkSync(path.join(dir, SOURCE), twin);
    applyPatch(dir, patchText);
    expect(fs.readFileSync(twin, 'utf8')).to.equal(pristine(SOURCE));
  });
});
