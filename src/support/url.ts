/**
 * URL helpers shared by brokers and backends. Passwords never leave this
 * module unmasked: every log line, banner and error uses {@link maskUrl}.
 */

/** `amqp://guest:**@127.0.0.1:5672//`: the password replaced, everything else kept. */
export function maskUrl(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/)([^:@/]*):([^@/]*)@/i, (_m, scheme: string, user: string) => `${scheme}${user}:**@`);
}

/** The scheme of a broker/backend URL, lower-case, without `://` (`amqp`, `redis`, `memory`). */
export function urlScheme(url: string): string {
  const m = /^([a-z][a-z0-9+.-]*):/i.exec(url);
  return m ? m[1]!.toLowerCase() : '';
}
