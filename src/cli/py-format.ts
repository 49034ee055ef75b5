/**
 * Printing remote-control replies the way Celery's command line does
 * (celery/bin/base.py `pretty`, `pretty_list`, `say_chat`): Python's
 * `json.dumps` separators, `str()` of lists and dicts, and its indentation.
 */
import { pyRepr } from '../protocol/repr.js';

function pyNumber(n: number): string {
  if (Number.isNaN(n)) return 'NaN';
  if (!Number.isFinite(n)) return n > 0 ? 'Infinity' : '-Infinity';
  return String(n);
}

function asciiString(s: string): string {
  // json.dumps(ensure_ascii=True): non-ASCII as \uXXXX
  return JSON.stringify(s).replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/**
 * Python's `json.dumps(value)` (`', '` and `': '` separators), or with
 * `indent` and `sortKeys` as `json.dumps(value, sort_keys=True, indent=4)`.
 */
export function pyJsonDumps(value: unknown, options: { indent?: number; sortKeys?: boolean } = {}, level = 0): string {
  const { indent, sortKeys = false } = options;
  if (value === null || value === undefined) return 'null';
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  if (typeof value === 'number') return pyNumber(value);
  if (typeof value === 'string') return asciiString(value);
  const nl = indent === undefined ? '' : `\n${' '.repeat(indent * (level + 1))}`;
  const end = indent === undefined ? '' : `\n${' '.repeat(indent * level)}`;
  const sep = indent === undefined ? ', ' : ',';
  if (Array.isArray(value)) {
    if (value.length === 0) return '[]';
    return `[${nl}${value.map((v) => pyJsonDumps(v, options, level + 1)).join(sep + nl)}${end}]`;
  }
  const entries = Object.entries(value as Record<string, unknown>);
  if (entries.length === 0) return '{}';
  if (sortKeys) entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${nl}${entries.map(([k, v]) => `${asciiString(k)}: ${pyJsonDumps(v, options, level + 1)}`).join(sep + nl)}${end}}`;
}

/** Celery's `text.indent`: every line, empty ones included. */
export function indent(text: string, n: number): string {
  const pad = ' '.repeat(n);
  return text
    .split('\n')
    .map((l) => pad + l)
    .join('\n');
}

/** Python's `str()` of a decoded JSON value (lists and dicts as their repr). */
function pyStr(value: unknown): string {
  return typeof value === 'string' ? value : pyRepr(value);
}

/** Celery's `CLIContext.pretty`: a status word and the body to print. */
export function pretty(n: unknown): ['OK' | 'ERROR', string] {
  if (Array.isArray(n)) return ['OK', n.length === 0 ? '- empty -' : n.map((item) => `* ${pyStr(item)}`).join('\n')];
  if (n !== null && typeof n === 'object') {
    const d = n as Record<string, unknown>;
    if ('ok' in d) return ['OK', indent(pretty(d.ok)[1], 4)];
    if ('error' in d) return ['ERROR', indent(pretty(d.error)[1], 4)];
    // Python pipes the JSON through pygments, which ends it with a newline.
    return ['OK', `${pyJsonDumps(d, { indent: 4, sortKeys: true })}\n`];
  }
  if (typeof n === 'string') return ['OK', n];
  return ['OK', pyRepr(n)];
}

/** One reply as Celery prints it: `->  node: OK` and, with `showBody`, the body indented. */
export function sayReply(reply: Record<string, unknown>, showBody: boolean): string {
  const [node] = Object.keys(reply);
  const [status, body] = pretty(reply[node!]);
  const title = `->  ${node}: ${status}`;
  return showBody && body ? `${title}\n${indent(body, 4)}` : title;
}

/** `1 node`, `2 nodes`. */
export function pluralize(n: number, noun: string): string {
  return n === 1 ? noun : `${noun}s`;
}
