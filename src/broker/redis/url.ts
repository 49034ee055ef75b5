/**
 * Redis broker URLs, read by kombu's rules, turned into ioredis options:
 *
 *   redis://[user:password@]host[:port][/db]
 *   rediss://...                     (TLS; `broker_use_ssl` or ?ssl_cert_reqs=... for options)
 *   sentinel://[user:password@]host:port[;sentinel://host:port...][/db]
 *                                    (`master_name` in broker_transport_options)
 *
 * The password never leaves this module except inside the ioredis options.
 */
import type { RedisOptions } from 'ioredis';
import type { TlsOptions } from '../../app/config.js';
import { ImproperlyConfigured } from '../../errors.js';
import { tlsConnectOptions } from '../../support/tls.js';
import { maskUrl } from '../../support/url.js';
import type { RedisTransportOptions } from './options.js';

/** What a Redis broker URL says. */
export interface RedisEndpoint {
  scheme: 'redis' | 'rediss' | 'sentinel';
  /** host/port pairs: one for redis(s)://, each sentinel for sentinel://. */
  hosts: Array<{ host: string; port: number }>;
  username: string | undefined;
  password: string | undefined;
  db: number;
  /** Query parameters of the first URL (ssl_cert_reqs and friends). */
  query: URLSearchParams;
}

function parseDb(path: string, url: string): number {
  const p = path.replace(/^\//, '');
  if (p === '' || p === '/') return 0;
  const decoded = decodeURIComponent(p);
  if (!/^\d+$/.test(decoded)) {
    throw new ImproperlyConfigured(`Invalid broker_url ${JSON.stringify(maskUrl(url))}: the database must be an integer (redis://host:6379/0), not ${JSON.stringify(decoded)}`);
  }
  return Number(decoded);
}

/** Parses a redis://, rediss:// or sentinel:// broker URL (kombu's rules: an empty path is db 0). */
export function parseRedisUrl(url: string): RedisEndpoint {
  const parts = url.split(';').map((s) => s.trim()).filter(Boolean);
  let scheme: RedisEndpoint['scheme'] | null = null;
  const hosts: RedisEndpoint['hosts'] = [];
  let username: string | undefined;
  let password: string | undefined;
  let db = 0;
  let query = new URLSearchParams();
  for (const [i, part] of parts.entries()) {
    let parsed: URL;
    try {
      parsed = new URL(part);
    } catch {
      throw new ImproperlyConfigured(`Invalid broker_url ${JSON.stringify(maskUrl(url))}: expected redis://[:password@]host:6379/db`);
    }
    const s = parsed.protocol.replace(/:$/, '').toLowerCase();
    if (s !== 'redis' && s !== 'rediss' && s !== 'sentinel') {
      throw new ImproperlyConfigured(`Unsupported scheme ${s}:// in broker_url ${JSON.stringify(maskUrl(url))}: use redis://, rediss:// or sentinel://`);
    }
    if (scheme !== null && (s === 'sentinel') !== (scheme === 'sentinel')) {
      throw new ImproperlyConfigured(`broker_url ${JSON.stringify(maskUrl(url))} mixes sentinel:// with ${s}://: list only sentinels, separated by ';'`);
    }
    scheme ??= s;
    const defaultPort = s === 'sentinel' ? 26379 : 6379;
    hosts.push({ host: parsed.hostname.replace(/^\[|\]$/g, '') || '127.0.0.1', port: parsed.port ? Number(parsed.port) : defaultPort });
    if (parsed.username && username === undefined) username = decodeURIComponent(parsed.username);
    if (parsed.password && password === undefined) password = decodeURIComponent(parsed.password);
    if (i === 0) {
      db = parseDb(parsed.pathname, url);
      query = parsed.searchParams;
    }
  }
  if (scheme === null) throw new ImproperlyConfigured('broker_url is empty');
  if (scheme !== 'sentinel' && hosts.length > 1) {
    throw new ImproperlyConfigured(`broker_url ${JSON.stringify(maskUrl(url))} lists several servers: only sentinel:// URLs may be joined with ';'`);
  }
  return { scheme, hosts, username, password, db, query };
}

/** `ssl_cert_reqs` & co. in a rediss:// query, as Celery documents them, on top of `broker_use_ssl`. */
function tlsFromQuery(query: URLSearchParams, base: TlsOptions | boolean | null | undefined): Record<string, unknown> {
  const fromQuery: TlsOptions = {};
  const reqs = query.get('ssl_cert_reqs');
  if (reqs !== null) {
    const r = reqs.toLowerCase().replace(/^cert_/, '');
    if (r === 'none') fromQuery.rejectUnauthorized = false;
    else if (r === 'required' || r === 'optional') fromQuery.rejectUnauthorized = true;
    else throw new ImproperlyConfigured(`ssl_cert_reqs=${reqs} in broker_url: use CERT_REQUIRED, CERT_OPTIONAL or CERT_NONE`);
  }
  if (query.get('ssl_ca_certs')) fromQuery.ca = query.get('ssl_ca_certs')!;
  if (query.get('ssl_certfile')) fromQuery.cert = query.get('ssl_certfile')!;
  if (query.get('ssl_keyfile')) fromQuery.key = query.get('ssl_keyfile')!;
  const merged = { ...(typeof base === 'object' && base ? base : {}), ...fromQuery };
  return tlsConnectOptions(Object.keys(merged).length ? merged : true) ?? {};
}

/**
 * ioredis options for every connection of the broker (the command
 * connection and the blocking ones duplicate them).
 */
export function connectionOptions(
  endpoint: RedisEndpoint,
  transport: RedisTransportOptions,
  settings: { tls: TlsOptions | boolean | null | undefined; connectTimeout: number },
): RedisOptions {
  const base: RedisOptions = {
    db: endpoint.db,
    lazyConnect: true,
    connectTimeout: Math.round((transport.socket_connect_timeout ?? settings.connectTimeout) * 1000),
    keepAlive: 30_000,
    noDelay: true,
  };
  if (endpoint.username !== undefined) base.username = endpoint.username;
  if (endpoint.password !== undefined) base.password = endpoint.password;
  if (transport.client_name) base.connectionName = transport.client_name;
  const wantsTls = endpoint.scheme === 'rediss' || (endpoint.scheme === 'sentinel' && Boolean(settings.tls));
  if (wantsTls) base.tls = tlsFromQuery(endpoint.query, settings.tls) as RedisOptions['tls'];
  if (endpoint.scheme === 'sentinel') {
    if (!transport.master_name) {
      throw new ImproperlyConfigured("sentinel:// needs the 'master_name' transport option: broker_transport_options = { master_name: 'mymaster' }");
    }
    base.sentinels = endpoint.hosts;
    base.name = transport.master_name;
    if (transport.sentinel_kwargs?.password) base.sentinelPassword = transport.sentinel_kwargs.password;
    if (transport.sentinel_kwargs?.username) base.sentinelUsername = transport.sentinel_kwargs.username;
    if (wantsTls) base.enableTLSForSentinelMode = true;
  } else {
    base.host = endpoint.hosts[0]!.host;
    base.port = endpoint.hosts[0]!.port;
  }
  return base;
}
