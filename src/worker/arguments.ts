/**
 * Mapping a message's args and kwargs onto a TypeScript function's parameters.
 *
 * A Python caller may send `add.apply_async(kwargs={'x': 2, 'y': 3})`; JS has
 * no keyword arguments, so kwargs are placed by parameter name. Names come from
 * the task's `params` option or are read from the function's source. The
 * `params` option can also say what Python's `*args` and `**kwargs` say: the
 * function then receives the extra positional args as one array and the
 * unmatched kwargs as one object, at those positions. Errors are Python's
 * `TypeError`s, word for word, so a Python `get()` raises what a Python task
 * would have raised.
 */
import { ImproperlyConfigured } from '../errors.js';

/**
 * How a parameter takes its value:
 * - `positional`: by position or by name (Python's positional-or-keyword);
 * - `spread`: `...rest`, the remaining positional args spread into the call;
 * - `varargs`: `*args`, the remaining positional args as one array;
 * - `kwonly`: a name after `*args`, only by keyword (Python's keyword-only);
 * - `varkw`: `**kwargs`, the kwargs no other parameter takes, as one object.
 */
export type ParamKind = 'positional' | 'spread' | 'varargs' | 'kwonly' | 'varkw';

/** One parameter: its name (null when destructured), and whether it may be omitted. */
export interface Param {
  name: string | null;
  optional: boolean;
  kind: ParamKind;
}

/** Splits a parameter list on top-level commas, skipping strings, comments and nested brackets. */
function splitTopLevel(src: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let current = '';
  for (let i = 0; i < src.length; i++) {
    const ch = src[i]!;
    if (ch === '"' || ch === "'" || ch === '`') {
      const end = findStringEnd(src, i);
      current += src.slice(i, end + 1);
      i = end;
      continue;
    }
    if (ch === '/' && src[i + 1] === '*') {
      const end = src.indexOf('*/', i + 2);
      i = end < 0 ? src.length : end + 1;
      continue;
    }
    if (ch === '/' && src[i + 1] === '/') {
      const end = src.indexOf('\n', i);
      i = end < 0 ? src.length : end;
      continue;
    }
    if ('([{'.includes(ch)) depth++;
    else if (')]}'.includes(ch)) depth--;
    if (ch === ',' && depth === 0) {
      parts.push(current);
      current = '';
    } else {
      current += ch;
    }
  }
  if (current.trim()) parts.push(current);
  return parts;
}

function findStringEnd(src: string, start: number): number {
  const quote = src[start];
  for (let i = start + 1; i < src.length; i++) {
    if (src[i] === '\\') i++;
    else if (src[i] === quote) return i;
  }
  return src.length - 1;
}

/** The text between the parameter list's parentheses (or the bare arrow parameter). */
function parameterSource(fnSource: string): string {
  const src = fnSource.replace(/^async\s+/, '');
  const arrowBare = /^([A-Za-z_$][\w$]*)\s*=>/.exec(src);
  if (arrowBare) return arrowBare[1]!;
  const open = src.indexOf('(');
  if (open < 0) return '';
  let depth = 0;
  for (let i = open; i < src.length; i++) {
    const ch = src[i]!;
    if (ch === '"' || ch === "'" || ch === '`') {
      i = findStringEnd(src, i);
      continue;
    }
    if (ch === '(') depth++;
    else if (ch === ')' && --depth === 0) return src.slice(open + 1, i);
  }
  return '';
}

const IDENTIFIER = /^[A-Za-z_$][\w$]*$/;

/** Reads a function's parameters from its source. */
export function readParams(fn: (...args: never[]) => unknown): Param[] {
  return splitTopLevel(parameterSource(Function.prototype.toString.call(fn))).map((raw): Param => {
    const text = raw.trim();
    const rest = text.startsWith('...');
    const body = rest ? text.slice(3).trim() : text;
    const eq = splitAssignment(body);
    const name = IDENTIFIER.test(eq.target) ? eq.target : null;
    return { name, optional: rest || eq.hasDefault, kind: rest ? 'spread' : 'positional' };
  });
}

function splitAssignment(text: string): { target: string; hasDefault: boolean } {
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if ('([{'.includes(ch)) depth++;
    else if (')]}'.includes(ch)) depth--;
    else if (ch === '=' && depth === 0 && text[i + 1] !== '>' && text[i + 1] !== '=') {
      return { target: text.slice(0, i).trim(), hasDefault: true };
    }
  }
  return { target: text.trim(), hasDefault: false };
}

/**
 * Parses a `params` task option: `'x'`, `'y?'` (may be omitted), `'...rest'`
 * (spread), `'*args'` (one array), `'**kwargs'` (one object); names after
 * `'*args'` are keyword-only, as in Python. Throws {@link ImproperlyConfigured}
 * for a list Python would not accept either.
 */
export function paramsFromOption(names: readonly string[]): Param[] {
  const bad = (why: string): ImproperlyConfigured => new ImproperlyConfigured(`Invalid params ${JSON.stringify(names)}: ${why}`);
  const out: Param[] = [];
  const seen = new Set<string>();
  for (const raw of names) {
    if (typeof raw !== 'string') throw bad(`${JSON.stringify(raw)} is not a string`);
    const previous = out.at(-1)?.kind;
    if (previous === 'varkw' || previous === 'spread') throw bad(`nothing may follow ${previous === 'varkw' ? "'**kwargs'" : "'...rest'"}`);
    let kind: ParamKind;
    let name: string;
    if (raw.startsWith('**')) [kind, name] = ['varkw', raw.slice(2)];
    else if (raw.startsWith('*')) [kind, name] = ['varargs', raw.slice(1)];
    else if (raw.startsWith('...')) [kind, name] = ['spread', raw.slice(3)];
    else [kind, name] = [out.some((p) => p.kind === 'varargs') ? 'kwonly' : 'positional', raw.replace(/\?$/, '')];
    if (!IDENTIFIER.test(name)) throw bad(`${JSON.stringify(raw)} is not a parameter name (write 'x', 'x?', '*args', '**kwargs' or '...rest')`);
    if (seen.has(name)) throw bad(`duplicate parameter ${JSON.stringify(name)}`);
    if (kind === 'varargs' && out.some((p) => p.kind === 'varargs')) throw bad("only one '*args' is allowed");
    if (kind === 'spread' && out.some((p) => p.kind === 'varargs')) throw bad("'...rest' and '*args' cannot be combined");
    seen.add(name);
    out.push({ name, optional: kind !== 'positional' && kind !== 'kwonly' ? true : raw.endsWith('?'), kind });
  }
  return out;
}

/** Python's `TypeError`, so Python rebuilds it as the builtin. */
export class ArgumentsError extends TypeError {
  override name = 'TypeError';
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

function quoteList(names: string[]): string {
  const q = names.map((n) => `'${n}'`);
  return q.length <= 1 ? q.join('') : q.length === 2 ? `${q[0]} and ${q[1]}` : `${q.slice(0, -1).join(', ')}, and ${q.at(-1)}`;
}

/** Placeholder for a positional parameter no arg or kwarg filled (yet). */
const UNSET = Symbol('unset');

/**
 * Builds the argument list for calling `taskName`'s function with `args` and
 * `kwargs`, binding them as Python binds a call. Throws {@link ArgumentsError}
 * like Python would.
 */
export function bindArguments(taskName: string, params: readonly Param[], args: unknown[], kwargs: Record<string, unknown>): unknown[] {
  let nPositional = 0;
  while (nPositional < params.length && params[nPositional]!.kind === 'positional') nPositional++;
  // Only a spread can follow the positional parameters in a list read from source: the common case.
  const tail = params[nPositional]?.kind;
  const takesExtraArgs = tail === 'spread' || tail === 'varargs';
  if (!takesExtraArgs && args.length > nPositional) {
    throw new ArgumentsError(
      `${taskName}() takes ${plural(nPositional, 'positional argument')} but ${args.length} ${args.length === 1 ? 'was' : 'were'} given`,
    );
  }
  if (tail === undefined || tail === 'spread') {
    // The hot path (every task run): positional args only, nothing to collect. Allocates nothing
    // unless an argument is missing (no name string, no key list, no filtered copies).
    let hasKwargs = false;
    for (const _ in kwargs) {
      hasKwargs = true;
      break;
    }
    if (!hasKwargs) {
      let missing: string[] | null = null;
      for (let i = args.length; i < nPositional; i++) {
        const p = params[i]!;
        if (!p.optional && p.name !== null) (missing ??= []).push(p.name);
      }
      if (missing) {
        throw new ArgumentsError(`${taskName}() missing ${plural(missing.length, 'required positional argument')}: ${quoteList(missing)}`);
      }
      return args;
    }
  }
  const fn = `${taskName}()`;
  const kwNames = Object.keys(kwargs);
  if (kwNames.length > 0 && params.some((p) => p.name === null)) {
    throw new ArgumentsError(`${fn} cannot take keyword arguments: its parameter names are unknown (give the task a params option)`);
  }
  const positional: unknown[] = [];
  for (let i = 0; i < nPositional; i++) positional.push(i < args.length ? args[i] : UNSET);
  const keywordOnly = new Map<number, unknown>();
  const extraKwargs: Record<string, unknown> = {};
  const hasVarkw = params.some((p) => p.kind === 'varkw');
  for (const key of kwNames) {
    // `*args`/`**kwargs` names are not bindable by keyword: `f(args=1)` lands in kwargs, as in Python.
    const index = params.findIndex((p) => p.name === key && (p.kind === 'positional' || p.kind === 'kwonly'));
    if (index < 0) {
      if (!hasVarkw) throw new ArgumentsError(`${fn} got an unexpected keyword argument '${key}'`);
      extraKwargs[key] = kwargs[key];
    } else if (index < nPositional) {
      if (index < args.length) throw new ArgumentsError(`${fn} got multiple values for argument '${key}'`);
      positional[index] = kwargs[key];
    } else {
      keywordOnly.set(index, kwargs[key]);
    }
  }
  const missing: string[] = [];
  for (let i = args.length; i < nPositional; i++) {
    if (positional[i] !== UNSET) continue;
    if (params[i]!.optional) positional[i] = undefined;
    else missing.push(params[i]!.name!);
  }
  if (missing.length > 0) {
    throw new ArgumentsError(`${fn} missing ${plural(missing.length, 'required positional argument')}: ${quoteList(missing)}`);
  }
  const missingKw = params.filter((p, i) => p.kind === 'kwonly' && !p.optional && !keywordOnly.has(i)).map((p) => p.name!);
  if (missingKw.length > 0) {
    throw new ArgumentsError(`${fn} missing ${plural(missingKw.length, 'required keyword-only argument')}: ${quoteList(missingKw)}`);
  }
  if (tail === undefined || tail === 'spread') {
    // Trailing omitted optionals stay omitted, so JS default values apply.
    if (args.length <= nPositional) while (positional.length > args.length && positional[positional.length - 1] === undefined) positional.pop();
    return tail === 'spread' ? [...positional, ...args.slice(nPositional)] : positional;
  }
  const out = positional;
  for (let i = nPositional; i < params.length; i++) {
    const kind = params[i]!.kind;
    if (kind === 'varargs') out.push(args.slice(nPositional));
    else if (kind === 'kwonly') out.push(keywordOnly.get(i));
    else out.push(extraKwargs); // varkw
  }
  return out;
}

const paramCache = new WeakMap<object, Param[]>();

/** A task's parameters (from its `params` option, else its source; without `self`), cached. */
export function paramsOfTask(task: { fn: (...args: never[]) => unknown; bound: boolean; options: { params?: readonly string[] | undefined } }): Param[] {
  let params = paramCache.get(task);
  if (!params) {
    params = task.options.params ? paramsFromOption(task.options.params) : readParams(task.fn);
    if (task.bound && !task.options.params) params = params.slice(1); // `self`
    paramCache.set(task, params);
  }
  return params;
}
