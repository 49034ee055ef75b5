/**
 * Teaches amqplib's field-table decoder the tags py-amqp writes.
 *
 * py-amqp (every Python Celery producer) encodes an int beyond 32 bits with
 * tag `L`, and amqplib 2.x throws "Unexpected type tag" on it *while parsing
 * the frame*: the whole connection dies, the message is redelivered, and every
 * TypeScript worker that receives it dies the same way (a poison message at the
 * connection level). This replaces amqplib's `decodeFields` with one that reads
 * `L` and `U` (py-amqp's signed 64/16-bit) and, for any tag it still does not
 * know, returns an `{'!': 'unknown'}` marker for the rest of the table instead
 * of killing the connection.
 *
 * amqplib's `defs.js` copies `codec.decodeFields` when it is first loaded;
 * see {@link amqplib} for how that is handled whatever the import order.
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

const require = createRequire(import.meta.url);

type Fields = Record<string, unknown>;

export function decodeFields(slice: Buffer): Fields {
  const fields: Fields = {};
  let offset = 0;

  function value(): unknown {
    const tag = String.fromCharCode(slice[offset]!);
    offset++;
    let v: unknown;
    switch (tag) {
      case 'b': v = slice.readInt8(offset); offset += 1; break;
      case 'B': v = slice.readUInt8(offset); offset += 1; break;
      case 's': v = slice.readInt16BE(offset); offset += 2; break;
      case 'U': v = slice.readInt16BE(offset); offset += 2; break;
      case 'u': v = slice.readUInt16BE(offset); offset += 2; break;
      case 'I': v = slice.readInt32BE(offset); offset += 4; break;
      case 'i': v = slice.readUInt32BE(offset); offset += 4; break;
      case 'l':
      case 'L': v = Number(slice.readBigInt64BE(offset)); offset += 8; break;
      case 'f': v = slice.readFloatBE(offset); offset += 4; break;
      case 'd': v = slice.readDoubleBE(offset); offset += 8; break;
      case 't': v = slice[offset] !== 0; offset += 1; break;
      case 'V': v = null; break;
      case 'T': v = { '!': 'timestamp', value: Number(slice.readBigUInt64BE(offset)) }; offset += 8; break;
      case 'D': {
        const places = slice[offset]!;
        const digits = slice.readInt32BE(offset + 1);
        offset += 5;
        v = { '!': 'decimal', value: { places, digits } };
        break;
      }
      case 'S':
      case 'x': {
        const len = slice.readUInt32BE(offset);
        offset += 4;
        const bytes = slice.subarray(offset, offset + len);
        v = tag === 'S' ? bytes.toString('utf8') : bytes;
        offset += len;
        break;
      }
      case 'F': {
        const len = slice.readUInt32BE(offset);
        offset += 4;
        v = decodeFields(slice.subarray(offset, offset + len));
        offset += len;
        break;
      }
      case 'A': {
        const len = slice.readUInt32BE(offset);
        offset += 4;
        const end = offset + len;
        const items: unknown[] = [];
        while (offset < end) items.push(value());
        v = items;
        break;
      }
      default:
        // Unknown width: the rest of this table cannot be read, but the frame can.
        offset = slice.length;
        v = { '!': 'unknown', value: tag };
    }
    return v;
  }

  while (offset < slice.length) {
    const keyLen = slice.readUInt8(offset);
    offset++;
    const key = slice.toString('utf8', offset, offset + keyLen);
    offset += keyLen;
    fields[key] = value();
  }
  return fields;
}

type Amqplib = typeof import('amqplib');

/**
 * Loads amqplib with the patched decoder. When nothing has loaded amqplib yet,
 * the shared copy is patched (so later importers get the tolerant decoder too).
 * When someone already has, their copy captured the original decoder at load
 * time, so ts-celery loads a private copy of amqplib's modules instead and
 * leaves theirs untouched.
 */
function loadPatchedAmqplib(): Amqplib {
  const entry = require.resolve('amqplib');
  const packageDir = dirname(entry) + '/';
  const libDir = join(dirname(entry), 'lib');
  const codecPath = join(libDir, 'codec.js');
  const patch = (): void => {
    (require(codecPath) as { decodeFields: unknown }).decodeFields = decodeFields;
  };
  if (!require.cache[join(libDir, 'defs.js')]) {
    patch();
    return require(entry) as Amqplib;
  }
  const theirs = new Map<string, NodeJS.Module | undefined>();
  for (const key of Object.keys(require.cache)) {
    if (key.startsWith(packageDir)) {
      theirs.set(key, require.cache[key]);
      delete require.cache[key];
    }
  }
  try {
    patch();
    return require(entry) as Amqplib;
  } finally {
    for (const key of Object.keys(require.cache)) if (key.startsWith(packageDir)) delete require.cache[key];
    for (const [key, mod] of theirs) require.cache[key] = mod;
  }
}

/** amqplib, with a decoder that reads every tag py-amqp writes. */
export const amqplib: Amqplib = loadPatchedAmqplib();
