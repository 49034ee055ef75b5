/**
 * Python `repr()` of JSON values, for the `argsrepr`/`kwargsrepr` headers that
 * Python workers, Flower and the logs show. Truncated to 1024 characters like
 * Celery's `saferepr(..., maxlen=1024)`.
 */

const MAX_REPR = 1024;

/** Printable ASCII without quotes or backslashes: Python's repr is the text in single quotes. */
const PLAIN_ASCII = /^[\x20-\x21\x23-\x26\x28-\x5b\x5d-\x7e]*$/;

function reprString(s: string): string {
  if (PLAIN_ASCII.test(s)) return `'${s}'`;
  const quote = s.includes("'") && !s.includes('"') ? '"' : "'";
  let out = quote;
  for (const ch of s) {
    const code = ch.codePointAt(0)!;
    if (ch === '\\') out += '\\\\';
    else if (ch === quote) out += `\\${quote}`;
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (code < 0x20 || code === 0x7f) out += `\\x${code.toString(16).padStart(2, '0')}`;
    else out += ch;
  }
  return out + quote;
}

function reprNumber(n: number): string {
  if (Number.isNaN(n)) return 'nan';
  if (!Number.isFinite(n)) return n > 0 ? 'inf' : '-inf';
  return String(n);
}

/** `repr()` of one value as Python would print its JSON-decoded equivalent. */
export function pyRepr(value: unknown, seen?: Set<object>): string {
  if (value === null || value === undefined) return 'None';
  switch (typeof value) {
    case 'string':
      return reprString(value);
    case 'number':
      return reprNumber(value);
    case 'boolean':
      return value ? 'True' : 'False';
    case 'bigint':
      return value.toString();
    case 'object':
      break;
    default:
      return `<${typeof value}>`;
  }
  if (value instanceof Date) return reprString(value.toISOString());
  // Created for containers only: the repr of a string or number allocates no Set.
  seen ??= new Set();
  if (seen.has(value)) return Array.isArray(value) ? '[...]' : '{...}';
  seen.add(value);
  try {
    if (Array.isArray(value)) return `[${value.map((v) => pyRepr(v, seen)).join(', ')}]`;
    const entries = Object.entries(value as Record<string, unknown>);
    return `{${entries.map(([k, v]) => `${reprString(k)}: ${pyRepr(v, seen)}`).join(', ')}}`;
  } finally {
    seen.delete(value);
  }
}

function truncate(s: string): string {
  return s.length > MAX_REPR ? `${s.slice(0, MAX_REPR - 3)}...` : s;
}

/** `repr(tuple(args))`: `(2, 3)`, `('a',)`, `()`. */
export function argsRepr(args: readonly unknown[]): string {
  let inner = '';
  for (let i = 0; i < args.length; i++) inner += (i ? ', ' : '') + pyRepr(args[i]);
  return truncate(args.length === 1 ? `(${inner},)` : `(${inner})`);
}

/** `repr(kwargs)`: `{'y': 3}`. */
export function kwargsRepr(kwargs: Record<string, unknown>): string {
  // delay()'s kwargs are {} (no allocation for the repr of an empty dict).
  for (const _ in kwargs) return truncate(pyRepr(kwargs));
  return '{}';
}
