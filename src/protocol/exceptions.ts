/**
 * Exceptions in results: Celery's `{exc_type, exc_message, exc_module}` shape.
 *
 * JS -> Python: a JS error whose name is a Python builtin exception
 * (`TypeError`, `ValueError`, `KeyError`...) is stored with module `builtins`,
 * so Python's `get()` raises the real builtin. Other errors keep their class
 * name; their module is the class's static `pythonModule` when it has one
 * (so Python rebuilds a class it has imported), else a module Python never
 * has, and Python synthesizes an exception class of that name.
 *
 * Python -> JS: the shape is read as data into a {@link TaskError}; no lookup
 * or construction is ever driven by `exc_type` (a crafted result cannot make
 * the client build anything else).
 */
import { inspect } from 'node:util';
import { TaskError, ThreadTaskError } from '../errors.js';
import { pyRepr } from './repr.js';

/** Celery's serialized exception. */
export interface SerializedException {
  exc_type: string;
  exc_message: unknown[];
  exc_module: string | null;
}

/** Module written for JS errors that have no Python counterpart. Python never imports it. */
export const JS_EXCEPTION_MODULE = 'ts_celery.errors';

const PYTHON_BUILTIN_EXCEPTIONS = new Set([
  'ArithmeticError', 'AssertionError', 'AttributeError', 'BufferError', 'ConnectionError',
  'EOFError', 'Exception', 'FileExistsError', 'FileNotFoundError', 'FloatingPointError',
  'ImportError', 'IndexError', 'KeyError', 'LookupError', 'MemoryError', 'ModuleNotFoundError',
  'NameError', 'NotImplementedError', 'OSError', 'OverflowError', 'PermissionError',
  'RecursionError', 'ReferenceError', 'RuntimeError', 'SyntaxError', 'TimeoutError',
  'TypeError', 'UnicodeError', 'ValueError', 'ZeroDivisionError',
]);

function errorName(err: Error): string {
  // `name` is what JS code sets deliberately; fall back to the constructor's name.
  const name = typeof err.name === 'string' && err.name !== 'Error' ? err.name : err.constructor?.name;
  return name && /^[A-Za-z_][\w.]*$/.test(name) ? name : 'Error';
}

function jsonSafe(value: unknown): unknown {
  try {
    const text = JSON.stringify(value);
    return text === undefined ? String(value) : JSON.parse(text);
  } catch {
    return String(value);
  }
}

/** Serializes a thrown value the way a Python worker stores an exception. */
export function serializeException(thrown: unknown): SerializedException {
  if (thrown instanceof TaskError) {
    return { exc_type: thrown.excType, exc_message: thrown.excArgs, exc_module: thrown.excModule };
  }
  if (thrown instanceof Error) {
    const name = errorName(thrown);
    const ctor = thrown.constructor as { pythonModule?: unknown };
    const module =
      typeof ctor.pythonModule === 'string'
        ? ctor.pythonModule
        : PYTHON_BUILTIN_EXCEPTIONS.has(name)
          ? 'builtins'
          : JS_EXCEPTION_MODULE;
    const args = (thrown as { excArgs?: unknown }).excArgs;
    return {
      exc_type: name,
      exc_message: Array.isArray(args) ? args.map(jsonSafe) : [thrown.message],
      exc_module: module,
    };
  }
  return { exc_type: 'Exception', exc_message: [nonErrorMessage(thrown)], exc_module: 'builtins' };
}

/**
 * The one arg of the `Exception` stored for a thrown value that is not an
 * Error: readable for whoever reads the result, never an empty `{}`.
 */
function nonErrorMessage(thrown: unknown): unknown {
  // `throw "text"` or `throw 42`: Python would call this an Exception with that arg.
  if (thrown === null || typeof thrown === 'string' || typeof thrown === 'number' || typeof thrown === 'boolean') return thrown;
  if (typeof (thrown as { then?: unknown } | undefined)?.then === 'function') {
    return 'a Promise was thrown instead of an Error (throw an Error, or await the promise first)';
  }
  // Plain data (`throw { code: 42 }`) stays data: Python shows the dict.
  const proto = typeof thrown === 'object' ? Object.getPrototypeOf(thrown) : undefined;
  if (Array.isArray(thrown) || proto === Object.prototype || proto === null) return jsonSafe(thrown);
  // Class instances, Maps, symbols, undefined...: JSON would print `{}` or nothing.
  return `non-Error value thrown: ${inspect(thrown, { depth: 2, breakLength: Infinity })}`;
}

/**
 * The JS stack for the `traceback` field, its first line naming the class the
 * way `exc_type` does (a subclass that never set `name` prints `Error:`).
 */
export function formatTraceback(thrown: unknown): string | null {
  // Formatted in the worker thread that caught it, from the original error.
  if (thrown instanceof ThreadTaskError) return thrown.remoteTraceback;
  if (!(thrown instanceof Error)) return null;
  const headline = `${errorName(thrown)}: ${thrown.message}`;
  const stack = thrown.stack;
  if (!stack) return headline;
  const frames = stack.indexOf('\n    at ');
  return frames >= 0 ? headline + stack.slice(frames) : headline;
}

/** True when `value` has the serialized-exception shape. */
export function isSerializedException(value: unknown): value is SerializedException {
  return (
    value !== null &&
    typeof value === 'object' &&
    typeof (value as { exc_type?: unknown }).exc_type === 'string'
  );
}

/** Rebuilds a remote failure as a {@link TaskError} (data only). */
export function deserializeException(
  value: unknown,
  context: { state: string; taskId: string; traceback: string | null },
): TaskError {
  // Stored by other implementations, the traceback is not always text (celery-node 0.5.9 stores
  // the JSON of its Error object, `{}`): only text is a traceback.
  if (typeof context.traceback !== 'string' && context.traceback !== null) context = { ...context, traceback: null };
  if (!isSerializedException(value)) {
    return new TaskError({
      excType: 'Exception',
      excArgs: [value === undefined ? null : value],
      excModule: null,
      ...context,
    });
  }
  const rawArgs = (value as { exc_message?: unknown }).exc_message;
  const excArgs = Array.isArray(rawArgs) ? rawArgs : rawArgs === undefined || rawArgs === null ? [] : [rawArgs];
  const module = (value as { exc_module?: unknown }).exc_module;
  return new TaskError({
    excType: value.exc_type,
    excArgs,
    excModule: typeof module === 'string' ? module : null,
    ...context,
  });
}

/**
 * Python's `repr()` of a stored exception: `ValueError('header failed')`,
 * as Celery writes it into messages such as a chord's
 * `Dependency <id> raised ValueError('header failed')`.
 */
export function exceptionRepr(exc: unknown): string {
  const { exc_type, exc_message } = isSerializedException(exc) ? normalizeArgs(exc) : serializeException(exc);
  return `${exc_type}(${exc_message.map((a) => pyRepr(a)).join(', ')})`;
}

function normalizeArgs(exc: SerializedException): SerializedException {
  const raw = (exc as { exc_message?: unknown }).exc_message;
  return { ...exc, exc_message: Array.isArray(raw) ? raw : raw === undefined || raw === null ? [] : [raw] };
}
