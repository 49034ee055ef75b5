/** Celery's rate strings (`rate_limit`): `'10/s'`, `'100/m'`, `'1000/h'`. */
import { InvalidRateLimit } from '../errors.js';

const MODIFIERS: Record<string, number> = { s: 1, m: 60, h: 3600 };

/**
 * Celery's `rate()`: `'100/m'` -> tasks per second (1.666...). A number is
 * per second; empty, null or 0 means no limit (0 is returned). Throws
 * {@link InvalidRateLimit} on anything else.
 */
export function parseRate(value: string | number | null | undefined): number {
  if (value === null || value === undefined || value === '') return 0;
  if (typeof value === 'number') {
    if (!Number.isFinite(value) || value < 0) throw new InvalidRateLimit(value, `ValueError('${value}')`);
    return value;
  }
  if (typeof value !== 'string') throw new InvalidRateLimit(value, `TypeError('rate must be a string or a number')`);
  const slash = value.indexOf('/');
  const ops = slash < 0 ? value : value.slice(0, slash);
  const modifier = slash < 0 ? 's' : value.slice(slash + 1);
  if (!(modifier in MODIFIERS)) throw new InvalidRateLimit(value, `KeyError('${modifier}')`);
  const n = ops.trim() === '' ? NaN : Number(ops);
  if (!Number.isFinite(n) || n < 0) throw new InvalidRateLimit(value, `ValueError("could not convert string to float: '${ops}'")`);
  return n / MODIFIERS[modifier]!;
}

