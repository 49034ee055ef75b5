/** TLS options as Celery users give them (`broker_use_ssl`, `redis_backend_use_ssl`), for Node's `tls.connect`. */
import { readFileSync } from 'node:fs';
import type { TlsOptions } from '../app/config.js';

function loadPem(value: string | Buffer): string | Buffer {
  // Celery users pass file paths (ssl.CERT_* style); Node wants contents.
  return typeof value === 'string' && !value.includes('-----BEGIN') ? readFileSync(value) : value;
}

/**
 * Node TLS options from a TLS setting: `ca`/`cert`/`key` given as paths are
 * read; `true` means Node's defaults (`{}`); null/false means no TLS options.
 */
export function tlsConnectOptions(tls: TlsOptions | boolean | null | undefined): Record<string, unknown> | null {
  if (!tls) return null;
  if (tls === true) return {};
  const out: Record<string, unknown> = { ...tls };
  if (tls.ca) out.ca = Array.isArray(tls.ca) ? tls.ca.map(loadPem) : loadPem(tls.ca);
  if (tls.cert) out.cert = loadPem(tls.cert);
  if (tls.key) out.key = loadPem(tls.key);
  return out;
}
