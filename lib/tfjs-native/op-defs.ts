/**
 * TensorFlow's op definitions, read from the library in use (the patched binding's getAllOpList):
 * what a graph function's nodes need that eager execution infers by itself, namely which inputs
 * form a list, the names of the output arguments, and the attributes' defaults.
 */
import { readFields, utf8 } from '../io/protobuf';

export interface ArgDef {
  name: string;
  /** A fixed DataType, or 0 when typeAttr / typeListAttr says. */
  type: number;
  typeAttr: string;
  /** The int attribute counting a homogeneous list (e.g. AddN's N). */
  numberAttr: string;
  /** The list(type) attribute typing a heterogeneous list (e.g. IdentityN's T). */
  typeListAttr: string;
}

export interface AttrDef {
  name: string;
  /** 'type', 'int', 'list(type)', … */
  type: string;
  /** A serialized AttrValue, when the attribute has a default. */
  defaultValue?: Uint8Array;
}

export interface OpDef {
  name: string;
  inputs: ArgDef[];
  outputs: ArgDef[];
  attrs: AttrDef[];
  isStateful: boolean;
}

function argDef(bytes: Uint8Array): ArgDef {
  const a: ArgDef = { name: '', type: 0, typeAttr: '', numberAttr: '', typeListAttr: '' };
  for (const [f, v] of readFields(bytes)) {
    if (f === 1) a.name = utf8(v);
    else if (f === 3) a.type = Number(v);
    else if (f === 4) a.typeAttr = utf8(v);
    else if (f === 5) a.numberAttr = utf8(v);
    else if (f === 6) a.typeListAttr = utf8(v);
  }
  return a;
}

function attrDef(bytes: Uint8Array): AttrDef {
  const a: AttrDef = { name: '', type: '' };
  for (const [f, v] of readFields(bytes)) {
    if (f === 1) a.name = utf8(v);
    else if (f === 2) a.type = utf8(v);
    else if (f === 3) a.defaultValue = v as Uint8Array;
  }
  return a;
}

function opDef(bytes: Uint8Array): OpDef {
  const op: OpDef = { name: '', inputs: [], outputs: [], attrs: [], isStateful: false };
  for (const [f, v] of readFields(bytes)) {
    if (f === 1) op.name = utf8(v);
    else if (f === 2) op.inputs.push(argDef(v as Uint8Array));
    else if (f === 3) op.outputs.push(argDef(v as Uint8Array));
    else if (f === 4) op.attrs.push(attrDef(v as Uint8Array));
    else if (f === 17) op.isStateful = v === 1n;
  }
  return op;
}

/** OpDefs by name, decoded when first asked for. */
export class OpRegistry {
  private readonly raw = new Map<string, Uint8Array>();
  private readonly decoded = new Map<string, OpDef>();

  constructor(opList: Uint8Array) {
    for (const [f, v] of readFields(opList)) {
      if (f !== 1) continue;
      const bytes = v as Uint8Array;
      // The name is the OpDef's first field; read only that much now.
      const name = readFields(bytes).find(([field]) => field === 1);
      if (name) this.raw.set(utf8(name[1]), bytes);
    }
  }

  get size(): number {
    return this.raw.size;
  }

  get(name: string): OpDef | undefined {
    let op = this.decoded.get(name);
    if (!op) {
      const bytes = this.raw.get(name);
      if (!bytes) return undefined;
      op = opDef(bytes);
      this.decoded.set(name, op);
    }
    return op;
  }
}
