/**
 * A recorded sequence of TensorFlow ops (a Program, as traced-function.ts records it from tfjs's
 * eager calls) written as a TensorFlow FunctionDef, so the whole sequence runs as one graph:
 * TensorFlow then optimizes it (Grappler, oneDNN's layout pass) and runs independent ops side by
 * side, as it does for Python's tf.function.
 *
 * Eager execution infers what a graph node must spell out; the op's OpDef (op-defs.ts) supplies
 * it: type attributes from the inputs' dtypes, which inputs form a list, output argument names,
 * and attribute defaults.
 */
import type { OpDef, OpRegistry } from './op-defs';
import { ProtoWriter } from '../io/protobuf';

/** TF_AttrType of TensorFlow's C API, as tfjs-node's binding passes attribute types. */
export const ATTR = { STRING: 0, INT: 1, FLOAT: 2, BOOL: 3, TYPE: 4, SHAPE: 5 } as const;

/** tfjs-node's op attribute: a list when `value` is an array. */
export interface RecordedAttr {
  name: string;
  type: number;
  value: unknown;
}

/** Where a node's input comes from: a function argument, a constant, or an earlier op's output. */
export type Ref = { arg: number } | { constant: number } | { op: number; output: number };

export interface TensorSpec {
  /** TensorFlow DataType (TF_FLOAT = 1, …). */
  dtype: number;
  shape: number[];
}

export interface RecordedOp {
  op: string;
  attrs: RecordedAttr[];
  inputs: Ref[];
  outputs: TensorSpec[];
}

export interface Constant extends TensorSpec {
  /** The tensor's bytes, little-endian, as TensorProto.tensor_content holds them. */
  bytes: Uint8Array;
}

export interface Program {
  args: TensorSpec[];
  constants: Constant[];
  ops: RecordedOp[];
  results: Ref[];
}

export class GraphFunctionError extends Error {
  constructor(
    readonly op: string,
    readonly index: number,
    detail: string,
  ) {
    super(`graph function: op ${index} (${op}): ${detail}`);
    this.name = 'GraphFunctionError';
  }
}

function writeShape(w: ProtoWriter, shape: readonly number[]): void {
  for (const d of shape) w.message(2, (dim) => dim.varint(1, d));
}

function writeAttrValue(w: ProtoWriter, a: RecordedAttr): void {
  const v = a.value;
  if (Array.isArray(v) && a.type !== ATTR.SHAPE) {
    w.message(1, (list) => {
      if (a.type === ATTR.STRING) for (const s of v as string[]) list.string(2, s);
      else if (a.type === ATTR.INT) list.packedVarints(3, v as number[]);
      else if (a.type === ATTR.FLOAT) list.packedFloats(4, v as number[]);
      else if (a.type === ATTR.BOOL) list.packedVarints(5, v as boolean[]);
      else if (a.type === ATTR.TYPE) list.packedVarints(6, v as number[]);
      else throw new Error(`attribute ${a.name}: list of attribute type ${a.type} not supported`);
    });
    return;
  }
  switch (a.type) {
    case ATTR.STRING:
      w.string(2, String(v));
      break;
    case ATTR.INT:
      w.varint(3, v as number);
      break;
    case ATTR.FLOAT:
      w.float(4, v as number);
      break;
    case ATTR.BOOL:
      w.varint(5, !!v);
      break;
    case ATTR.TYPE:
      w.varint(6, v as number);
      break;
    case ATTR.SHAPE:
      w.message(7, (s) => (v == null ? s.varint(3, true) : writeShape(s, v as number[])));
      break;
    default:
      throw new Error(`attribute ${a.name}: attribute type ${a.type} not supported`);
  }
}

/** The lengths of an op's argument lists (inputs or outputs), from its attributes. */
function argLengths(args: OpDef['inputs'], attrOf: (name: string) => RecordedAttr | undefined, total?: number): number[] {
  const lengths = args.map((arg) => {
    if (arg.numberAttr) {
      const n = attrOf(arg.numberAttr)?.value;
      return typeof n === 'number' ? n : -1;
    }
    if (arg.typeListAttr) {
      const types = attrOf(arg.typeListAttr)?.value;
      return Array.isArray(types) ? types.length : -1;
    }
    return 1;
  });
  // One list whose length no attribute gives takes what the others leave (inputs only).
  const unknown = lengths.filter((n) => n < 0).length;
  if (unknown === 1 && total !== undefined) {
    const known = lengths.reduce((s, n) => (n > 0 ? s + n : s), 0);
    lengths[lengths.indexOf(-1)] = total - known;
  }
  return lengths;
}

/** The FunctionDef (serialized) that runs `program` as `name`. */
export function functionDef(name: string, program: Program, ops: OpRegistry): Uint8Array {
  const specOf = (r: Ref): TensorSpec =>
    'arg' in r ? program.args[r.arg] : 'constant' in r ? program.constants[r.constant] : program.ops[r.op].outputs[r.output];
  // Each op output's "node:output_arg:index" name, filled as the nodes are written.
  const outputNames: string[][] = [];
  const refName = (r: Ref): string =>
    'arg' in r ? `a${r.arg}` : 'constant' in r ? `c${r.constant}:output:0` : outputNames[r.op][r.output];

  const w = new ProtoWriter();
  w.message(1, (sig) => {
    sig.string(1, name);
    program.args.forEach((a, i) => sig.message(2, (arg) => arg.string(1, `a${i}`).varint(3, a.dtype)));
    program.results.forEach((r, i) => sig.message(3, (arg) => arg.string(1, `r${i}`).varint(3, specOf(r).dtype)));
  });

  // The arguments' shapes, as tf.function records them: Grappler's rewrites (fusing batch norm with
  // the ReLU after it, say) need the shapes its inference starts from.
  const shapeList = (shapes: number[][]) => (v: ProtoWriter) =>
    v.message(1, (list) => shapes.forEach((shape) => list.message(7, (s) => writeShape(s, shape))));
  w.message(5, (e) => e.string(1, '_input_shapes').message(2, shapeList(program.args.map((a) => a.shape))));
  program.args.forEach((a, i) =>
    w.message(7, (e) =>
      e.varint(1, i).message(2, (argAttrs) => argAttrs.message(1, (m) => m.string(1, '_output_shapes').message(2, shapeList([a.shape])))),
    ),
  );

  program.constants.forEach((c, i) =>
    w.message(3, (node) => {
      node.string(1, `c${i}`).string(2, 'Const');
      node.message(5, (e) => e.string(1, 'dtype').message(2, (v) => v.varint(6, c.dtype)));
      node.message(5, (e) =>
        e.string(1, 'value').message(2, (v) =>
          v.message(8, (t) => {
            t.varint(1, c.dtype);
            t.message(2, (s) => writeShape(s, c.shape));
            t.bytes(4, c.bytes);
          }),
        ),
      );
    }),
  );

  program.ops.forEach((rec, i) => {
    const def = ops.get(rec.op);
    if (!def) throw new GraphFunctionError(rec.op, i, 'no such op in this TensorFlow library');
    const given = new Map(rec.attrs.map((a) => [a.name, a]));
    const attrOf = (n: string) => given.get(n);
    const inputLengths = argLengths(def.inputs, attrOf, rec.inputs.length);
    if (inputLengths.reduce((s, n) => s + n, 0) !== rec.inputs.length)
      throw new GraphFunctionError(rec.op, i, `${rec.inputs.length} inputs do not fit the op's arguments`);

    // Attributes eager execution infers from the inputs.
    const inferred: RecordedAttr[] = [];
    let at = 0;
    def.inputs.forEach((arg, k) => {
      const n = inputLengths[k];
      const dtypes = rec.inputs.slice(at, at + n).map((r) => specOf(r).dtype);
      at += n;
      if (arg.typeAttr && !given.has(arg.typeAttr) && dtypes.length) {
        const attr = { name: arg.typeAttr, type: ATTR.TYPE, value: dtypes[0] };
        given.set(arg.typeAttr, attr);
        inferred.push(attr);
      }
      if (arg.numberAttr && !given.has(arg.numberAttr)) {
        const attr = { name: arg.numberAttr, type: ATTR.INT, value: n };
        given.set(arg.numberAttr, attr);
        inferred.push(attr);
      }
      if (arg.typeListAttr && !given.has(arg.typeListAttr)) {
        const attr = { name: arg.typeListAttr, type: ATTR.TYPE, value: dtypes };
        given.set(arg.typeListAttr, attr);
        inferred.push(attr);
      }
    });

    const nodeName = `n${i}`;
    const outputLengths = argLengths(def.outputs, attrOf);
    if (outputLengths.some((n) => n < 0)) throw new GraphFunctionError(rec.op, i, 'an output list has no length attribute');
    const names: string[] = [];
    def.outputs.forEach((arg, k) => {
      for (let j = 0; j < outputLengths[k]; j++) names.push(`${nodeName}:${arg.name}:${j}`);
    });
    if (names.length < rec.outputs.length)
      throw new GraphFunctionError(rec.op, i, `${rec.outputs.length} outputs recorded, the op has ${names.length}`);
    outputNames.push(names);

    w.message(3, (node) => {
      node.string(1, nodeName).string(2, rec.op);
      for (const r of rec.inputs) node.string(3, refName(r));
      for (const a of [...rec.attrs, ...inferred]) {
        // TensorFlow ignores unknown attributes of eager ops; a graph node must not carry them
        // (internal ones, such as a kernel label '_kernel', excepted).
        if (!a.name.startsWith('_') && !def.attrs.some((d) => d.name === a.name)) continue;
        node.message(5, (e) => e.string(1, a.name).message(2, (v) => writeAttrValue(v, a)));
      }
      for (const d of def.attrs)
        if (!given.has(d.name) && d.defaultValue) node.message(5, (e) => e.string(1, d.name).bytes(2, d.defaultValue!));
      // oneDNN's native-format kernels carry a label; eager execution picks it, a graph node names it.
      if (rec.op.startsWith('_MklNative') && !given.has('_kernel'))
        node.message(5, (e) => e.string(1, '_kernel').message(2, (v) => v.string(2, 'MklNameChangeOp')));
    });
  });

  // Results that are an argument or a constant go out through an Identity node.
  const resultNames = program.results.map((r, i) => {
    if ('op' in r) return refName(r);
    const node = `id${i}`;
    w.message(3, (n) => {
      n.string(1, node).string(2, 'Identity').string(3, refName(r));
      n.message(5, (e) => e.string(1, 'T').message(2, (v) => v.varint(6, specOf(r).dtype)));
    });
    return `${node}:output:0`;
  });
  resultNames.forEach((ref, i) => w.message(4, (e) => e.string(1, `r${i}`).string(2, ref)));
  return w.finish();
}
