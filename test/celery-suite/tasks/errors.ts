/**
 * The exceptions of `t/integration/tasks.py`, as ts-celery stores them: with
 * `exc_module` `t.integration.tasks` (the suite's client imports that module,
 * so its `get()` raises the real class), or as Python builtins.
 */

/** `class ExpectedException(Exception)`: the suite's sentinel failure. */
export class ExpectedException extends Error {
  static readonly pythonModule = 't.integration.tasks';
  override name = 'ExpectedException';
  /** Python's `args`, stored as `exc_message`. */
  readonly excArgs: unknown[];
  constructor(...args: unknown[]) {
    super(args.map(String).join(', '));
    this.excArgs = args;
  }
}

/**
 * `class UnpickleableException(Exception)`: `__init__(self, foo, bar=None)`
 * raises without `bar`, so Python cannot rebuild it from its args alone.
 */
export class UnpickleableException extends Error {
  static readonly pythonModule = 't.integration.tasks';
  override name = 'UnpickleableException';
  readonly excArgs: unknown[];
  constructor(foo: unknown, readonly bar: unknown) {
    super(String(foo));
    this.excArgs = [foo];
  }
}

/** Python's builtin `ValueError`. */
export class PyValueError extends Error {
  override name = 'ValueError';
}

/** Python's builtin `TypeError`. */
export class PyTypeError extends Error {
  override name = 'TypeError';
}
