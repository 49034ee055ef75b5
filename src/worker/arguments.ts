/**
 * Mapping a message's args and kwargs onto a TypeScript function's parameters.
 *
 * A Python caller may send `add.apply_async(kwargs={'x': 2, 'y': 3})`; JS has
 * no keyword arguments, so kwargs are placed by parameter name. Names come from
 * the task's `params` option or are read from the function's source. Errors are
 * Python's `TypeError`s, word for word, so a Python `get()` raises what a
 * Python task would have raised.
 */

/** One parameter: its name (null when destructured), and whether it may be omitted. */
export interface Param {
  name: string | null;
  optional: boolean;
  rest: boolean;
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

/** Reads a function's parameters from its source. */
export function readParams(fn: (...args: never[]) => unknown): Param[] {
  return splitTopLevel(parameterSource(Function.prototype.toString.call(fn))).map((raw) => {
    const text = raw.trim();
    const rest = text.startsWith('...');
    const body = rest ? text.slice(3).trim() : text;
    const eq = splitAssignment(body);
    const name = /^[A-Za-z_$][\w$]*$/.test(eq.target) ? eq.target : null;
    return { name, optional: rest || eq.hasDefault, rest };
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

/** Parses a `params` task option: `'x'`, `'y?'` (may be omitted), `'...rest'`. */
export function paramsFromOption(names: readonly string[]): Param[] {
  return names.map((n) => {
    const rest = n.startsWith('...');
    const bare = n.replace(/^\.\.\./, '').replace(/\?$/, '');
    return { name: bare, optional: rest || n.endsWith('?'), rest };
  });
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

/**
 * Builds the positional argument list for a call of `taskName` with `args`
 * and `kwargs`. Throws {@link ArgumentsError} like Python would.
 */
export function bindArguments(taskName: string, params: readonly Param[], args: unknown[], kwargs: Record<string, unknown>): unknown[] {
  const kwNames = Object.keys(kwargs);
  const restIndex = params.findIndex((p) => p.rest);
  const positional = restIndex >= 0 ? params.slice(0, restIndex) : params;
  const fn = `${taskName}()`;
  if (restIndex < 0 && args.length > positional.length) {
    throw new ArgumentsError(
      `${fn} takes ${plural(positional.length, 'positional argument')} but ${args.length} ${args.length === 1 ? 'was' : 'were'} given`,
    );
  }
  if (kwNames.length === 0) {
    const missing = positional.slice(args.length).filter((p) => !p.optional && p.name !== null).map((p) => p.name!);
    if (missing.length > 0) {
      throw new ArgumentsError(`${fn} missing ${plural(missing.length, 'required positional argument')}: ${quoteList(missing)}`);
    }
    return args;
  }
  if (positional.some((p) => p.name === null)) {
    throw new ArgumentsError(`${fn} cannot take keyword arguments: its parameter names are unknown (give the task a params option)`);
  }
  const out = args.slice();
  for (const key of kwNames) {
    const index = positional.findIndex((p) => p.name === key);
    if (index < 0) throw new ArgumentsError(`${fn} got an unexpected keyword argument '${key}'`);
    if (index < args.length) throw new ArgumentsError(`${fn} got multiple values for argument '${key}'`);
  }
  const missing: string[] = [];
  for (let i = args.length; i < positional.length; i++) {
    const p = positional[i]!;
    if (Object.hasOwn(kwargs, p.name!)) out[i] = kwargs[p.name!];
    else if (p.optional) out[i] = undefined;
    else missing.push(p.name!);
  }
  if (missing.length > 0) {
    throw new ArgumentsError(`${fn} missing ${plural(missing.length, 'required positional argument')}: ${quoteList(missing)}`);
  }
  // Trailing omitted optionals stay omitted, so JS default values apply.
  while (out.length > args.length && out[out.length - 1] === undefined) out.pop();
  return out;
}
