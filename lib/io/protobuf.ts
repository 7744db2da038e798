/**
 * The little of the protocol-buffers wire format the project writes and reads: TensorBoard's
 * Event records (tfevents.ts), graph functions' FunctionDefs and TensorFlow's OpList
 * (lib/tfjs-native). Varints, 32- and 64-bit floats and length-delimited fields; no schema, no
 * reflection: callers name field numbers from TensorFlow's .proto files.
 */

/** Appends fields to a growing buffer. */
export class ProtoWriter {
  private buf = new Uint8Array(256);
  private len = 0;

  private ensure(extra: number): void {
    if (this.len + extra <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.len + extra) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.len));
    this.buf = next;
  }

  private rawVarint(value: number | bigint): void {
    // int64 fields: a negative value is its 64-bit two's complement (ten bytes).
    let v = typeof value === 'bigint' ? value : BigInt(Math.trunc(value));
    if (v < 0n) v += 1n << 64n;
    this.ensure(10);
    while (v > 0x7fn) {
      this.buf[this.len++] = Number(v & 0x7fn) | 0x80;
      v >>= 7n;
    }
    this.buf[this.len++] = Number(v);
  }

  private tag(field: number, wireType: number): void {
    this.rawVarint((field << 3) | wireType);
  }

  varint(field: number, value: number | bigint | boolean): this {
    this.tag(field, 0);
    this.rawVarint(typeof value === 'boolean' ? (value ? 1 : 0) : value);
    return this;
  }

  /** A fixed-width field (wire type 5: 4 bytes, 1: 8 bytes), written little-endian by `write`. */
  private fixed(field: number, wireType: 1 | 5, write: (view: DataView) => void): this {
    const size = wireType === 5 ? 4 : 8;
    this.tag(field, wireType);
    this.ensure(size);
    write(new DataView(this.buf.buffer, this.buf.byteOffset + this.len, size));
    this.len += size;
    return this;
  }

  float(field: number, value: number): this {
    return this.fixed(field, 5, (view) => view.setFloat32(0, value, true));
  }

  double(field: number, value: number): this {
    return this.fixed(field, 1, (view) => view.setFloat64(0, value, true));
  }

  bytes(field: number, value: Uint8Array): this {
    this.tag(field, 2);
    this.rawVarint(value.length);
    this.ensure(value.length);
    this.buf.set(value, this.len);
    this.len += value.length;
    return this;
  }

  string(field: number, value: string): this {
    return this.bytes(field, Buffer.from(value, 'utf8'));
  }

  message(field: number, write: (w: ProtoWriter) => void): this {
    const inner = new ProtoWriter();
    write(inner);
    return this.bytes(field, inner.finish());
  }

  packedVarints(field: number, values: ReadonlyArray<number | boolean>): this {
    const inner = new ProtoWriter();
    for (const v of values) inner.rawVarint(typeof v === 'boolean' ? (v ? 1 : 0) : v);
    return this.bytes(field, inner.finish());
  }

  packedFloats(field: number, values: readonly number[]): this {
    const data = new Uint8Array(values.length * 4);
    const view = new DataView(data.buffer);
    values.forEach((v, i) => view.setFloat32(i * 4, v, true));
    return this.bytes(field, data);
  }

  finish(): Uint8Array {
    return this.buf.slice(0, this.len);
  }
}

export type ProtoValue = bigint | Uint8Array | number;

/** One message's fields, in order: varints as bigint, length-delimited as bytes, fixed32 as number. */
export function readFields(data: Uint8Array): Array<[field: number, value: ProtoValue]> {
  const out: Array<[number, ProtoValue]> = [];
  let at = 0;
  const varint = (): bigint => {
    let v = 0n;
    let shift = 0n;
    for (;;) {
      if (at >= data.length) throw new Error('protobuf: truncated varint');
      const b = data[at++];
      v |= BigInt(b & 0x7f) << shift;
      if (!(b & 0x80)) return v;
      shift += 7n;
    }
  };
  while (at < data.length) {
    const key = Number(varint());
    const field = key >>> 3;
    switch (key & 7) {
      case 0:
        out.push([field, varint()]);
        break;
      case 1:
        at += 8;
        break;
      case 2: {
        const n = Number(varint());
        if (at + n > data.length) throw new Error('protobuf: truncated field');
        out.push([field, data.subarray(at, at + n)]);
        at += n;
        break;
      }
      case 5:
        out.push([field, new DataView(data.buffer, data.byteOffset + at, 4).getFloat32(0, true)]);
        at += 4;
        break;
      default:
        throw new Error(`protobuf: wire type ${key & 7} not supported`);
    }
  }
  return out;
}

export const utf8 = (b: ProtoValue): string => Buffer.from(b as Uint8Array).toString('utf8');
