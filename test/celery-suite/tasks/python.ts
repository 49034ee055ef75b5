/** Python semantics the ported tasks rely on: `+`, `sum()`, `datetime.isoformat()`. */

function pyType(v: unknown): string {
  if (v === null || v === undefined) return 'NoneType';
  if (typeof v === 'number') return Number.isInteger(v) ? 'int' : 'float';
  if (typeof v === 'string') return 'str';
  if (typeof v === 'boolean') return 'bool';
  if (Array.isArray(v)) return 'list';
  return 'dict';
}

/** Python's `x + y` on JSON values: numbers add, strings and lists concatenate, else TypeError. */
export function pyAdd(x: unknown, y: unknown): unknown {
  const num = (v: unknown) => typeof v === 'number' || typeof v === 'boolean';
  if (num(x) && num(y)) return Number(x) + Number(y);
  if (typeof x === 'string' && typeof y === 'string') return x + y;
  if (Array.isArray(x) && Array.isArray(y)) return [...x, ...y];
  const err = new Error(`unsupported operand type(s) for +: '${pyType(x)}' and '${pyType(y)}'`);
  err.name = 'TypeError';
  throw err;
}

/** Python's `sum(iterable)`: starts at 0. */
export function pySum(values: unknown): unknown {
  if (!Array.isArray(values)) {
    const err = new Error(`'${pyType(values)}' object is not iterable`);
    err.name = 'TypeError';
    throw err;
  }
  return values.reduce((acc: unknown, v) => pyAdd(acc, v), 0);
}

const pad = (n: number, w = 2): string => String(n).padStart(w, '0');

/** An aware UTC `datetime.isoformat()`: `2026-11-27T00:53:46.945000+00:00`. */
export function isoTime(d: Date): string {
  const base =
    `${pad(d.getUTCFullYear(), 4)}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}` +
    `T${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
  const ms = d.getUTCMilliseconds();
  return `${base}${ms ? `.${pad(ms, 3)}000` : ''}+00:00`;
}
