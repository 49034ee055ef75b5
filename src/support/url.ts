/**
 * URL helpers shared by brokers and backends. Passwords never leave this
 * module unmasked: every log line, banner and error uses {@link maskUrl}.
 */

/**
 * `amqp://guest:**@127.0.0.1:5672//`: the password replaced, everything else
 * kept. The user info ends at the *last* `@` before the path, as URL parsers
 * split it, so an unencoded `@` in a password cannot leak its tail; when a
 * `/` in the password hides where it ends, everything up to the last `@` is masked.
 */
export function maskUrl(url: string): string {
  // kombu's failover list, `amqp://a//;amqp://b//`: every URL of it masked.
  if (url.includes(';')) return splitUrlList(url).map(maskOne).join(';');
  return maskOne(url);
}

/**
 * The URLs of a kombu failover list: `'amqp://a//;amqp://b//'` (split on `;`,
 * as kombu does) or an array; blanks dropped.
 */
export function splitUrlList(value: string | readonly string[]): string[] {
  const parts = typeof value === 'string' ? value.split(';') : value.flatMap((v) => v.split(';'));
  return parts.map((p) => p.trim()).filter((p) => p !== '');
}

function maskOne(url: string): string {
  const m = /^([a-z][a-z0-9+.-]*:\/\/)(.*)$/is.exec(url);
  if (!m) return url;
  const [, scheme, rest] = m as unknown as [string, string, string];
  const authorityEnd = rest.search(/[/?#]/);
  const authority = authorityEnd < 0 ? rest : rest.slice(0, authorityEnd);
  let at = authority.lastIndexOf('@');
  if (at < 0) {
    // No '@' before the first '/': either there are no credentials, or a '/' inside the
    // password cut the authority short ("user:pa/ss@host"). Only the latter looks like user:pass.
    if (!/:(?!\d*$)/.test(authority)) return url;
    at = rest.lastIndexOf('@');
    if (at < 0) return url;
  }
  const userinfo = rest.slice(0, at);
  const colon = userinfo.indexOf(':');
  if (colon < 0) return url; // a user name without a password
  return `${scheme}${userinfo.slice(0, colon)}:**${rest.slice(at)}`;
}

/**
 * A copy of an error that carries only its name, message and code: client
 * libraries attach the failed command to their errors (ioredis puts AUTH and
 * its password in `command.args`), and a `cause` chain is printed whole by
 * `console.log` and unhandled rejections.
 */
export function safeCause(err: unknown): Error {
  const e = err instanceof Error ? err : new Error(String(err));
  const copy = new Error(e.message);
  copy.name = e.name;
  const code = (e as { code?: unknown }).code;
  if (typeof code === 'string' || typeof code === 'number') (copy as Error & { code?: unknown }).code = code;
  return copy;
}

/** The scheme of a broker/backend URL, lower-case, without `://` (`amqp`, `redis`, `memory`). */
export function urlScheme(url: string): string {
  const m = /^([a-z][a-z0-9+.-]*):/i.exec(url);
  return m ? m[1]!.toLowerCase() : '';
}
