/**
 * `ts-celery events --dump`: one line per event, exactly as Celery's
 * `celery events --dump` prints them (celery/events/dumper.py):
 *
 *   w1@host [2026-12-03 09:09:05.762959+00:00] heartbeat: active=0, clock=137, freq=2.0, ...
 *   w1@host [2026-12-03 09:09:07.127777+00:00] task received: add(6fb2...) args=(5, 5) kwargs={} clock=139, ...
 */
import { pyRepr } from '../protocol/repr.js';
import type { CeleryEvent } from './event.js';

const HUMAN_TYPES: Record<string, string> = {
  'worker-offline': 'shutdown',
  'worker-online': 'started',
  'worker-heartbeat': 'heartbeat',
};

/** Task names the dumper remembers (Celery's LRU of 4095). */
const MAX_TASK_NAMES = 0xfff;

export function humanizeType(type: string): string {
  return HUMAN_TYPES[type.toLowerCase()] ?? type.toLowerCase().replace(/-/g, ' ');
}

/** Python's `str()` of a decoded JSON value. */
export function pyStr(value: unknown): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'number') return Number.isInteger(value) && !Object.is(value, -0) ? String(value) : pyFloat(value);
  return pyRepr(value);
}

function pyFloat(n: number): string {
  if (!Number.isFinite(n)) return Number.isNaN(n) ? 'nan' : n > 0 ? 'inf' : '-inf';
  return String(n);
}

/** `datetime.fromtimestamp(ts, timezone.utc)` as Python prints it. */
export function formatTimestamp(ts: number): string {
  const ms = Math.floor(ts * 1000);
  const d = new Date(ms);
  const pad = (n: number, w = 2): string => String(n).padStart(w, '0');
  const micros = Math.round((ts - Math.floor(ts)) * 1e6) % 1e6;
  const base = `${pad(d.getUTCFullYear(), 4)}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
  return `${base}${micros ? `.${pad(micros, 6)}` : ''}+00:00`;
}

export class Dumper {
  private readonly taskNames = new Map<string, string>();

  constructor(private readonly say: (line: string) => void) {}

  onEvent(event: CeleryEvent): void {
    const ev: Record<string, unknown> = { ...event };
    const timestamp = formatTimestamp(Number(ev.timestamp));
    delete ev.timestamp;
    const type = String(ev.type).toLowerCase();
    delete ev.type;
    const hostname = String(ev.hostname);
    delete ev.hostname;
    if (type.startsWith('task-')) {
      const uuid = String(ev.uuid);
      delete ev.uuid;
      let task: string;
      if (type === 'task-received' || type === 'task-sent') {
        task = `${pyStr(ev.name)}(${uuid}) args=${pyStr(ev.args)} kwargs=${pyStr(ev.kwargs)}`;
        delete ev.name;
        delete ev.args;
        delete ev.kwargs;
        this.taskNames.delete(uuid);
        this.taskNames.set(uuid, task);
        if (this.taskNames.size > MAX_TASK_NAMES) this.taskNames.delete(this.taskNames.keys().next().value as string);
      } else {
        task = this.taskNames.get(uuid) ?? '';
      }
      const fields = this.fields(ev);
      this.say(`${hostname} [${timestamp}] ${humanizeType(type)}${fields ? ':' : ''} ${task} ${fields}`);
      return;
    }
    const fields = this.fields(ev);
    this.say(`${hostname} [${timestamp}] ${humanizeType(type)}${fields ? ':' : ''} ${fields}`);
  }

  private fields(ev: Record<string, unknown>): string {
    return Object.keys(ev)
      .sort()
      .map((k) => `${k}=${pyStr(ev[k])}`)
      .join(', ');
  }
}
