/**
 * JSON as Celery/kombu speak it.
 *
 * Encoding is plain JSON (what every kombu version reads), after a check that
 * rejects values JSON would silently mangle or choke on: BigInt, cycles,
 * functions, symbols, NaN/Infinity.
 *
 * Decoding also unwraps kombu >= 5.3's tagged values
 * `{"__type__": "datetime"|"date"|"time"|"decimal"|"uuid"|"bytes"|"base64", "__value__": ...}`.
 * The reviver only runs when the text contains a tag, so the common case stays
 * on the fast path.
 */
import { EncodeError, ProtocolError } from '../errors.js';
import { parseIsoTime } from './time.js';

function describe(path: string): string {
  return path === '' ? 'the value' : path;
}

/**
 * Throws {@link EncodeError} naming the offending path when `value` cannot be
 * sent as JSON without loss. Dates and objects with `toJSON()` are fine.
 */
export function assertJsonSerializable(value: unknown, path = '', stack: object[] = []): void {
  switch (typeof value) {
    case 'string':
    case 'boolean':
    case 'undefined':
      return;
    case 'number':
      if (!Number.isFinite(value)) {
        throw new EncodeError(`${describe(path)} is ${value}, which JSON cannot represent`);
      }
      return;
    case 'bigint':
      throw new EncodeError(
        `${describe(path)} is a BigInt (${value}n), which JSON cannot represent: send it as a string or number`,
      );
    case 'function':
      throw new EncodeError(`${describe(path)} is a function, which cannot be sent to a worker`);
    case 'symbol':
      throw new EncodeError(`${describe(path)} is a symbol, which cannot be sent to a worker`);
    default:
      break;
  }
  if (value === null) return;
  const obj = value as object;
  if (obj instanceof Date) {
    if (Number.isNaN(obj.getTime())) throw new EncodeError(`${describe(path)} is an invalid Date`);
    return;
  }
  if (typeof (obj as { toJSON?: unknown }).toJSON === 'function') return;
  if (stack.includes(obj)) {
    throw new EncodeError(`${describe(path)} refers back to itself (a cycle), which JSON cannot represent`);
  }
  if (obj instanceof Map || obj instanceof Set) {
    throw new EncodeError(
      `${describe(path)} is a ${obj.constructor.name}, which JSON would send as {}: convert it to an object or array`,
    );
  }
  stack.push(obj);
  if (Array.isArray(obj)) {
    obj.forEach((v, i) => assertJsonSerializable(v, `${path}[${i}]`, stack));
  } else {
    for (const [k, v] of Object.entries(obj)) assertJsonSerializable(v, path ? `${path}.${k}` : k, stack);
  }
  stack.pop();
}

/** Nesting beyond which {@link plainJson} gives up (a cycle, or simply deep: the full check decides). */
const PLAIN_DEPTH = 32;

/**
 * True when `value` is made only of strings, booleans, null, finite numbers and plain arrays and
 * objects (prototype Object or null) no deeper than {@link PLAIN_DEPTH}: JSON sends it without loss.
 * False means "not sure" (a Date, a class instance, toJSON, a cycle...), never "invalid".
 */
function plainJson(value: unknown, depth: number): boolean {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return true;
    case 'number':
      return Number.isFinite(value);
    case 'object':
      break;
    default:
      return false;
  }
  if (value === null) return true;
  if (depth >= PLAIN_DEPTH) return false;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) if (!plainJson(value[i], depth + 1)) return false;
    return true;
  }
  const proto = Object.getPrototypeOf(value) as unknown;
  if (proto !== Object.prototype && proto !== null) return false;
  // for-in on a plain object: own enumerable keys (no inherited ones on these prototypes).
  const obj = value as Record<string, unknown>;
  for (const key in obj) if (!plainJson(obj[key], depth + 1)) return false;
  return true;
}

/**
 * Encodes to JSON text after {@link assertJsonSerializable}. `rootPath` names
 * the value in error messages (`args` gives `args[0] is a BigInt`).
 */
export function encodeJson(value: unknown, what = 'the value', rootPath = ''): string {
  // The common case (strings, finite numbers, plain arrays and objects) is checked without
  // building a path string per element; anything else takes the full check, which names the path.
  if (plainJson(value, 0)) return JSON.stringify(value);
  try {
    assertJsonSerializable(value, rootPath);
  } catch (err) {
    if (err instanceof EncodeError) throw new EncodeError(`Cannot encode ${what}: ${err.message}`);
    throw err;
  }
  return JSON.stringify(value);
}

/**
 * {@link encodeJson} for a task's `args` or `kwargs` (`part`): the text naming them in an error is
 * built only when there is an error (delay() encodes on every call, and it rarely fails).
 */
export function encodeTaskArgument(value: unknown, task: string, part: 'args' | 'kwargs'): string {
  if (plainJson(value, 0)) return JSON.stringify(value);
  return encodeJson(value, `the arguments of task ${task}`, part);
}

function formatUuid(hex: string): string {
  const h = hex.replace(/-/g, '').toLowerCase();
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** Unwraps one kombu tagged value; anything unrecognised is returned as is. */
function untag(_key: string, value: unknown): unknown {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return value;
  const o = value as Record<string, unknown>;
  if (!('__type__' in o) || !('__value__' in o) || Object.keys(o).length !== 2) return value;
  const v = o.__value__;
  switch (o.__type__) {
    case 'datetime':
      return typeof v === 'string' ? new Date(parseIsoTime(v)) : value;
    case 'date':
    case 'time':
    case 'decimal':
    case 'bytes':
      return typeof v === 'string' ? v : value;
    case 'uuid': {
      const hex = (v as { hex?: unknown } | null)?.hex;
      return typeof hex === 'string' ? formatUuid(hex) : value;
    }
    case 'base64':
      return typeof v === 'string' ? Buffer.from(v, 'base64') : value;
    default:
      return value;
  }
}

/** Decodes JSON text from a Celery peer. Throws {@link ProtocolError} with a short excerpt. */
export function decodeJson(text: string): unknown {
  try {
    return text.includes('"__type__"') ? JSON.parse(text, untag) : JSON.parse(text);
  } catch (err) {
    const excerpt = text.length > 60 ? `${text.slice(0, 60)}...` : text;
    throw new ProtocolError(`invalid JSON (${(err as Error).message}): ${JSON.stringify(excerpt)}`);
  }
}
