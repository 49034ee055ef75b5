/**
 * The app's time zone: Celery's `timezone` and `enable_utc` settings.
 *
 * As Celery 5.7's `app.timezone`: the `timezone` setting when set (an IANA
 * name), else UTC with `enable_utc` (the default), else the system's local
 * zone. Celery writes `date_done` and the eta/expires of the messages it
 * sends in that zone (`2026-12-03T17:04:02.818316+08:00`); both are the same
 * instant as their UTC form, so only readers that show them notice.
 */
import { ImproperlyConfigured } from '../errors.js';
import { didYouMean } from '../support/suggest.js';

let local: { tz: string | undefined; zone: string } | null = null;

/** The system's time zone (`TZ`, else /etc/localtime), as an IANA name. */
export function localTimeZone(): string {
  // Cached (a resolvedOptions() call per send would cost), but TZ may be changed at run time.
  if (local === null || local.tz !== process.env.TZ) {
    local = { tz: process.env.TZ, zone: new Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC' };
  }
  return local.zone;
}

/** The zone Celery 5.7's `app.timezone` would use for these settings. */
export function appTimezone(conf: { timezone: string | null; enable_utc: boolean }): string {
  return conf.timezone ?? (conf.enable_utc ? 'UTC' : localTimeZone());
}

/**
 * Throws {@link ImproperlyConfigured} unless `name` is an IANA time zone
 * Python's `ZoneInfo` would also load (so no case differences), naming the
 * closest valid zone.
 */
export function checkTimezone(name: string): void {
  let canonical: string | null = null;
  try {
    canonical = new Intl.DateTimeFormat('en-US', { timeZone: name }).resolvedOptions().timeZone;
  } catch {
    canonical = null;
  }
  // Intl ignores case, ZoneInfo (a file lookup) does not: 'asia/shanghai' would break a Python reader.
  const caseOnly = canonical !== null && canonical !== name && canonical.toLowerCase() === name.toLowerCase();
  if (canonical !== null && !caseOnly) return;
  const hint = caseOnly
    ? `: did you mean ${JSON.stringify(canonical)}?`
    : didYouMean(name, ['UTC', ...Intl.supportedValuesOf('timeZone')], { normalize: (s) => s.toLowerCase() });
  throw new ImproperlyConfigured(
    `Setting timezone must be an IANA time zone name such as "Europe/Berlin" or "UTC", got ${JSON.stringify(name)}${hint}`,
  );
}
