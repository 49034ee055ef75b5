/** Identifiers Celery puts on the wire. */
import { randomFillSync } from 'node:crypto';
import { hostname } from 'node:os';

/** UUIDs made per batch: one `randomFillSync` call and one pass over the bytes per batch. */
const UUID_BATCH = 128;
const HEX_DIGITS = Buffer.from('0123456789abcdef', 'latin1');
const uuidRandom = Buffer.alloc(16 * UUID_BATCH);
const uuidText = Buffer.alloc(36 * UUID_BATCH);
let uuidNext = UUID_BATCH;

/** Fills {@link uuidText} with the next batch of version-4 UUIDs, from the OS's CSPRNG. */
function refillUuids(): void {
  randomFillSync(uuidRandom);
  let o = 0;
  for (let r = 0; r < uuidRandom.length; r += 16) {
    uuidRandom[r + 6] = (uuidRandom[r + 6]! & 0x0f) | 0x40; // version 4
    uuidRandom[r + 8] = (uuidRandom[r + 8]! & 0x3f) | 0x80; // RFC 4122 variant
    for (let i = 0; i < 16; i++) {
      if (i === 4 || i === 6 || i === 8 || i === 10) uuidText[o++] = 0x2d; // '-'
      const b = uuidRandom[r + i]!;
      uuidText[o++] = HEX_DIGITS[b >> 4]!;
      uuidText[o++] = HEX_DIGITS[b & 15]!;
    }
  }
  uuidNext = 0;
}

/**
 * A new task id: a random (version 4) UUID, as Celery uses, from the same CSPRNG as
 * `crypto.randomUUID()`. Why not `randomUUID()`: it builds its string from about twenty
 * concatenations (~0.6 KB of short-lived strings per id); this cuts one flat 36-character
 * string out of a batch already written as text, which matters on the `delay()` path.
 */
export function newTaskId(): string {
  if (uuidNext === UUID_BATCH) refillUuids();
  const start = uuidNext++ * 36;
  return uuidText.toString('latin1', start, start + 36);
}

/** The machine's short host name (Celery's `%h` is the full one; `%n` the short one). */
export const hostName = (): string => hostname();

/** `gen<pid>@<host>`: the `origin` header Python producers send. */
export const producerOrigin = (): string => `gen${process.pid}@${hostname()}`;
