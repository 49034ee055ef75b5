/**
 * Logging in Celery's worker format, so people who know Celery can read it:
 *
 *   [2026-11-27 01:14:48,387: INFO/MainProcess] Task tasks.add[abc] received
 *
 * One process-wide level (the worker's `-l`). Output goes to stderr, as
 * Celery's does. Passwords must be masked before they get here (maskUrl).
 */

export type LogLevel = 'debug' | 'info' | 'warning' | 'error' | 'critical';

const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warning: 30, error: 40, critical: 50 };

let threshold = ORDER.warning;
let levelChosen = false;
let sink: (line: string) => void = (line) => process.stderr.write(`${line}\n`);

/** Sets the level below which nothing is printed (`-l info`). */
export function setLogLevel(level: LogLevel): void {
  threshold = ORDER[level];
  levelChosen = true;
}

/**
 * True once something chose a level (`-l`, or the user's `setLogLevel`), so a
 * component with a different default (the celery-node shim's worker logs at
 * info, as celery-node did) leaves a deliberate choice alone.
 */
export function logLevelChosen(): boolean {
  return levelChosen;
}

/** The level set by {@link setLogLevel} (worker threads are started at the same level). */
export function getLogLevel(): LogLevel {
  return (Object.keys(ORDER) as LogLevel[]).find((level) => ORDER[level] === threshold) ?? 'warning';
}

/** Writes a line formatted elsewhere (a worker thread's log) to the current output. */
export function writeLogLine(line: string): void {
  sink(line);
}

/** True when `level` would be printed: lets hot paths skip building messages. */
export function isEnabled(level: LogLevel): boolean {
  return ORDER[level] >= threshold;
}

/** Redirects output (tests capture it this way). Returns the previous sink. */
export function setLogSink(next: (line: string) => void): (line: string) => void {
  const previous = sink;
  sink = next;
  return previous;
}

/** Parses `-l` values the way Celery accepts them (any case, `warn` and `fatal` too). */
export function parseLogLevel(value: string): LogLevel | null {
  const v = value.toLowerCase();
  if (v === 'warn') return 'warning';
  if (v === 'fatal') return 'critical';
  return v in ORDER ? (v as LogLevel) : null;
}

const pad = (n: number, w = 2): string => String(n).padStart(w, '0');

function timestamp(d = new Date()): string {
  return (
    `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())},${pad(d.getMilliseconds(), 3)}`
  );
}

function format(value: unknown): string {
  if (value instanceof Error) return value.stack ?? `${value.name}: ${value.message}`;
  return typeof value === 'string' ? value : JSON.stringify(value);
}

/** A named logger; the name shows where Celery shows the process name's context. */
export interface Logger {
  debug(...parts: unknown[]): void;
  info(...parts: unknown[]): void;
  warning(...parts: unknown[]): void;
  error(...parts: unknown[]): void;
  critical(...parts: unknown[]): void;
}

function emit(level: LogLevel, name: string, parts: unknown[]): void {
  if (ORDER[level] < threshold) return;
  const where = name === 'MainProcess' ? name : `${name}`;
  sink(`[${timestamp()}: ${level.toUpperCase()}/${where}] ${parts.map(format).join(' ')}`);
}

/** `getLogger('tasks.sms')`: for task code, like Celery's `get_task_logger(__name__)`. */
export function getLogger(name = 'MainProcess'): Logger {
  return {
    debug: (...p) => emit('debug', name, p),
    info: (...p) => emit('info', name, p),
    warning: (...p) => emit('warning', name, p),
    error: (...p) => emit('error', name, p),
    critical: (...p) => emit('critical', name, p),
  };
}
