/**
 * Our patch to tfjs-node's native binding (patches/tfjs-node-binding.patch): with it, an array
 * value sets a list(string) or list(type) op attribute, which TensorFlow's fused kernels
 * (_FusedConv2D, _FusedMatMul and their oneDNN forms) need, and the binding registers graph
 * functions (addFunctionDef, removeFunction, getAllOpList; lib/tfjs-native/traced-function.ts).
 * `tfos setup` applies it to the binding's sources before it builds the addon
 * (lib/stack/tensorflow.ts).
 *
 * Applying is idempotent and all-or-nothing: every hunk must match the file exactly (its
 * removed and context lines, anywhere in the file) or already be applied (its added lines
 * there instead); otherwise nothing is written and BindingPatchError names the file and hunk.
 * Files are replaced by rename, never rewritten in place: node_modules may be a hard-linked copy
 * shared with other checkouts.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

/** The patch file, shipped with the package (package.json "files"). */
export const BINDING_PATCH_FILE = path.resolve(__dirname, '../../../patches/tfjs-node-binding.patch');

export class BindingPatchError extends Error {
  constructor(
    readonly file: string,
    readonly detail: string,
  ) {
    super(`tfjs-node binding patch: ${file}: ${detail}`);
    this.name = 'BindingPatchError';
  }
}

interface Hunk {
  /** 1-based line of the hunk's header in the patch file, for messages. */
  line: number;
  before: string[];
  after: string[];
}

interface FilePatch {
  file: string;
  hunks: Hunk[];
}

/** A unified diff (as `diff -u` writes it, paths a/… b/…) read into files and hunks; text before the first file is a comment. */
export function parseUnifiedDiff(text: string): FilePatch[] {
  const lines = text.split('\n');
  const files: FilePatch[] = [];
  let current: FilePatch | undefined;
  let hunk: Hunk | undefined;
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i];
    if (l.startsWith('--- ') && lines[i + 1]?.startsWith('+++ ')) {
      const target = lines[i + 1].slice(4).split('\t')[0].trim();
      current = { file: target.replace(/^b\//, ''), hunks: [] };
      files.push(current);
      hunk = undefined;
      i++;
    } else if (l.startsWith('@@')) {
      if (!current) throw new BindingPatchError('(patch)', `hunk at line ${i + 1} before any file header`);
      hunk = { line: i + 1, before: [], after: [] };
      current.hunks.push(hunk);
    } else if (hunk) {
      if (l.startsWith(' ') || l === '') {
        // An empty line inside a hunk is an empty context line; at the very end it is the file's last newline.
        if (l === '' && i === lines.length - 1) continue;
        hunk.before.push(l.slice(1));
        hunk.after.push(l.slice(1));
      } else if (l.startsWith('-')) hunk.before.push(l.slice(1));
      else if (l.startsWith('+')) hunk.after.push(l.slice(1));
      else if (!l.startsWith('\\')) hunk = undefined; // "\ No newline at end of file" is ignored
    }
  }
  if (!files.length || files.some((f) => !f.hunks.length)) throw new BindingPatchError('(patch)', 'no file with hunks in the patch');
  return files;
}

function countOf(haystack: string, needle: string): number {
  let n = 0;
  for (let at = haystack.indexOf(needle); at !== -1; at = haystack.indexOf(needle, at + 1)) n++;
  return n;
}

export type PatchOutcome = 'applied' | 'already-applied';

/**
 * Applies `patchText` under `rootDir`: 'applied' when it changed the files, 'already-applied'
 * when every hunk was there already. Throws BindingPatchError (nothing written) when a hunk
 * neither matches once nor is already applied. Some hunks applied and others not is a source
 * patched by an earlier version of this patch (whose hunks are a part of this one's): each hunk
 * matches exactly once either way, so the rest are applied without guessing.
 */
export function applyPatch(rootDir: string, patchText: string): PatchOutcome {
  const writes: Array<{ file: string; text: string }> = [];
  let pending = 0;
  for (const fp of parseUnifiedDiff(patchText)) {
    const file = path.join(rootDir, fp.file);
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (err) {
      throw new BindingPatchError(file, `cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    }
    for (const h of fp.hunks) {
      const before = h.before.join('\n') + '\n';
      const after = h.after.join('\n') + '\n';
      const done = countOf(text, after);
      // Once applied, the old text can still occur inside the new (a hunk that only appends).
      const old = countOf(text, before) - done * countOf(after, before);
      if (old === 1 && done === 0) {
        text = text.replace(before, () => after);
        pending++;
      } else if (old !== 0 || done !== 1)
        throw new BindingPatchError(
          file,
          `hunk at patch line ${h.line} ${old + done === 0 ? 'matches nothing (another tfjs-node version?)' : `is ambiguous (${old} unpatched and ${done} patched matches)`}`,
        );
    }
    writes.push({ file, text });
  }
  if (!pending) return 'already-applied';
  for (const w of writes) {
    const tmp = `${w.file}.tfos-${process.pid}`;
    fs.writeFileSync(tmp, w.text, { mode: fs.statSync(w.file).mode });
    fs.renameSync(tmp, w.file);
  }
  return 'applied';
}

/** Short digest of the patch text, recorded beside the build to know which patch it carries. */
export function patchDigest(patchText: string): string {
  return crypto.createHash('sha256').update(patchText).digest('hex').slice(0, 16);
}
