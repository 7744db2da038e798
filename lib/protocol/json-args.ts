/**
 * The user's `args` travel to every trainer as JSON. A value JSON cannot carry (a function, a
 * BigInt, NaN, a Map, a cycle) would arrive changed or not at all, so it is refused up front,
 * naming where it sits in `args`.
 */

export class ArgsNotJsonError extends TypeError {
  constructor(
    readonly field: string,
    what: string,
  ) {
    super(`TFCluster.run: ${field} ${what}; args must be plain JSON (objects, arrays, strings, finite numbers, booleans, null)`);
    this.name = 'ArgsNotJsonError';
  }
}

/** Throws ArgsNotJsonError for the first value in `value` that JSON would not carry unchanged. */
export function checkJsonArgs(value: unknown, field = 'args', seen = new Set<object>()): void {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return;
    case 'number':
      if (!Number.isFinite(value)) throw new ArgsNotJsonError(field, `is ${value}, which JSON turns into null`);
      return;
    case 'undefined':
      throw new ArgsNotJsonError(field, 'is undefined, which JSON drops');
    case 'function':
    case 'symbol':
    case 'bigint':
      throw new ArgsNotJsonError(field, `is a ${typeof value}`);
  }
  if (value === null) return;
  const obj = value as object;
  if (seen.has(obj)) throw new ArgsNotJsonError(field, 'refers back to itself (a cycle)');
  seen.add(obj);
  if (Array.isArray(obj)) {
    obj.forEach((v, i) => checkJsonArgs(v, `${field}[${i}]`, seen));
  } else {
    const proto = Object.getPrototypeOf(obj);
    if (proto !== Object.prototype && proto !== null) {
      throw new ArgsNotJsonError(field, `is a ${obj.constructor?.name ?? 'non-plain object'}, not a plain object`);
    }
    for (const [k, v] of Object.entries(obj)) checkJsonArgs(v, `${field}.${k}`, seen);
  }
  seen.delete(obj);
}
