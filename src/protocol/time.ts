/**
 * The time formats Celery puts on the wire.
 *
 * Python writes `datetime.isoformat()`: microseconds and an explicit offset
 * (`2026-11-27T00:53:46.945635+00:00`), a naive string for naive datetimes,
 * and the app timezone's offset when one is set. Workers read naive values as
 * UTC, as Celery 5.7's do (`maybe_make_aware(..., naive_as_utc=True)`).
 * JavaScript's `toISOString()` form (`...123Z`) is accepted too.
 */
import { ProtocolError } from '../errors.js';

const ISO_RE =
  /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?)?\s*(Z|z|[+-]\d{2}(?::?\d{2})?)?$/;

/**
 * Parses an ISO-8601 time as Celery sends it and returns epoch milliseconds.
 * Naive times are UTC (what a Python worker assumes). Throws {@link ProtocolError}.
 */
export function parseIsoTime(value: string): number {
  const m = ISO_RE.exec(value.trim());
  if (!m) throw new ProtocolError(`not an ISO-8601 time: ${JSON.stringify(value).slice(0, 80)}`);
  const [, y, mo, d, h = '0', mi = '0', s = '0', frac = '', tz] = m;
  const ms = frac ? Math.floor(Number(`0.${frac}`) * 1000) : 0;
  let t = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s), ms);
  // Date.UTC rolls impossible fields over (Feb 30 -> Mar 2); Python refuses them, so do we.
  const check = new Date(t);
  if (
    check.getUTCMonth() !== Number(mo) - 1 ||
    check.getUTCDate() !== Number(d) ||
    check.getUTCHours() !== Number(h) ||
    check.getUTCMinutes() !== Number(mi) ||
    check.getUTCSeconds() !== Number(s)
  ) {
    throw new ProtocolError(`not a valid time: ${JSON.stringify(value).slice(0, 80)}`);
  }
  if (tz && tz !== 'Z' && tz !== 'z') {
    const sign = tz[0] === '-' ? -1 : 1;
    const digits = tz.slice(1).replace(':', '');
    const offsetMin = Number(digits.slice(0, 2)) * 60 + Number(digits.slice(2, 4) || '0');
    if (offsetMin >= 24 * 60 || Number(digits.slice(2, 4) || '0') >= 60) {
      throw new ProtocolError(`not a valid UTC offset: ${JSON.stringify(value).slice(0, 80)}`);
    }
    t -= sign * offsetMin * 60_000;
  }
  if (!Number.isFinite(t)) throw new ProtocolError(`not a valid time: ${JSON.stringify(value).slice(0, 80)}`);
  return t;
}

/** Parses an optional eta/expires header: null/undefined stay null. */
export function parseOptionalTime(value: unknown, field: string): number | null {
  if (value === null || value === undefined || value === '') return null;
  if (typeof value === 'string') return parseIsoTime(value);
  if (value instanceof Date) return value.getTime();
  throw new ProtocolError(`${field} must be an ISO-8601 string, got ${typeof value}`);
}

const pad = (n: number, w = 2): string => String(n).padStart(w, '0');

const offsetFormats = new Map<string, Intl.DateTimeFormat>();

/**
 * The UTC offset of IANA zone `timeZone` at instant `ms`, in minutes east of
 * UTC (+480 for Asia/Shanghai; DST included). Throws RangeError for an
 * unknown zone.
 */
export function zoneOffsetMinutes(ms: number, timeZone: string): number {
  if (timeZone === 'UTC') return 0;
  let format = offsetFormats.get(timeZone);
  if (!format) {
    format = new Intl.DateTimeFormat('en-US', { timeZone, timeZoneName: 'longOffset' });
    offsetFormats.set(timeZone, format);
  }
  const name = format.formatToParts(ms).find((p) => p.type === 'timeZoneName')?.value ?? 'GMT';
  const m = /^GMT([+-])(\d{2}):?(\d{2})?/.exec(name);
  if (!m) return 0; // plain "GMT"
  return (m[1] === '-' ? -1 : 1) * (Number(m[2]) * 60 + Number(m[3] ?? '0'));
}

/**
 * Formats epoch milliseconds the way Python's aware `datetime.isoformat()`
 * does: `2026-11-27T00:53:46.945000+00:00` in UTC (the default), or the wall
 * time and offset of `timeZone` (`...T08:53:46.945000+08:00` for
 * Asia/Shanghai), as Celery writes times in the app's timezone.
 * Microseconds are omitted when zero.
 */
export function formatIsoTime(ms: number, timeZone = 'UTC'): string {
  const offset = timeZone === 'UTC' ? 0 : zoneOffsetMinutes(ms, timeZone);
  const d = new Date(ms + offset * 60_000);
  const base =
    `${pad(d.getUTCFullYear(), 4)}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}` +
    `T${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
  const millis = d.getUTCMilliseconds();
  const abs = Math.abs(offset);
  return `${base}${millis ? `.${pad(millis, 3)}000` : ''}${offset < 0 ? '-' : '+'}${pad(Math.floor(abs / 60))}:${pad(abs % 60)}`;
}
