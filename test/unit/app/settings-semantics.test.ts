import { readFileSync } from 'node:fs';
import { expect } from 'chai';
import { Celery, ImproperlyConfigured } from '../../../src/index.js';
import { unsupportedSettings } from '../../../src/app/config.js';
import { appTimezone } from '../../../src/app/timezone.js';
import { taskKeyPrefix } from '../../../src/backend/redis.js';
import { buildTaskMessage } from '../../../src/protocol/message.js';
import { buildResultMeta } from '../../../src/protocol/result-meta.js';
import { formatIsoTime, parseIsoTime } from '../../../src/protocol/time.js';

const fixture = (name: string): Record<string, unknown> =>
  JSON.parse(readFileSync(new URL(`../../fixtures/celery-5.7/${name}`, import.meta.url), 'utf8')) as Record<string, unknown>;

/** Issue #9, item 6: settings the table accepted but nobody read. */
describe('settings that were accepted but ignored', () => {
  describe('timezone and enable_utc', () => {
    it('timezone must be an IANA zone; a typo or a wrong case names the right one', () => {
      expect(() => new Celery('t', { timezone: 'Asia/Shanghia' })).to.throw(ImproperlyConfigured, /Setting timezone must be an IANA time zone name .* got "Asia\/Shanghia": did you mean "Asia\/Shanghai"\?/);
      // Intl would accept it, Python's ZoneInfo would not.
      expect(() => new Celery('t', { timezone: 'asia/shanghai' })).to.throw(ImproperlyConfigured, /did you mean "Asia\/Shanghai"/);
      expect(() => new Celery('t', { timezone: 'Mars/Olympus_Mons' })).to.throw(ImproperlyConfigured, /IANA time zone/);
      expect(new Celery('t', { timezone: 'Europe/Berlin' }).conf.timezone).to.equal('Europe/Berlin');
    });

    it("resolves the app's zone as Celery 5.7: timezone, else UTC with enable_utc, else the local zone", () => {
      expect(new Celery('t').conf.timezone).to.equal(null);
      expect(appTimezone(new Celery('t').conf)).to.equal('UTC');
      expect(appTimezone(new Celery('t', { timezone: 'Asia/Kolkata', enable_utc: false }).conf)).to.equal('Asia/Kolkata');
      const saved = process.env.TZ;
      process.env.TZ = 'Asia/Kolkata';
      try {
        const local = appTimezone(new Celery('t', { enable_utc: false }).conf);
        expect(formatIsoTime(Date.UTC(2026, 0, 1), local)).to.equal('2026-01-01T05:30:00+05:30');
      } finally {
        if (saved === undefined) delete process.env.TZ;
        else process.env.TZ = saved;
      }
    });

    it('formats times in a zone as Python isoformat() does, DST and half hours included', () => {
      const summer = Date.UTC(2026, 6, 1, 12, 0, 0, 250);
      const winter = Date.UTC(2026, 0, 1, 12, 0, 0);
      expect(formatIsoTime(summer)).to.equal('2026-07-01T12:00:00.250000+00:00');
      expect(formatIsoTime(summer, 'America/New_York')).to.equal('2026-07-01T08:00:00.250000-04:00');
      expect(formatIsoTime(winter, 'America/New_York')).to.equal('2026-01-01T07:00:00-05:00');
      expect(formatIsoTime(winter, 'Asia/Kolkata')).to.equal('2026-01-01T17:30:00+05:30');
      expect(parseIsoTime(formatIsoTime(summer, 'Asia/Shanghai'))).to.equal(summer);
    });

    it("writes eta/expires in the app's zone, as Celery 5.7 did in task_v2_eta_timezone_berlin.json", () => {
      const headers = fixture('task_v2_eta_timezone_berlin.json').headers as { eta: string; expires: string };
      const eta = parseIsoTime(headers.eta);
      const wire = buildTaskMessage({ id: 'x', task: 'fxtasks.add', eta, expires: parseIsoTime(headers.expires) }, eta - 10_000, 'Europe/Berlin');
      // Same instant, same offset, same shape (Python has microseconds; JS milliseconds).
      expect((wire.headers.eta as string).slice(0, 23)).to.equal(headers.eta.slice(0, 23));
      expect((wire.headers.eta as string).slice(-6)).to.equal('+01:00');
      expect((wire.headers.expires as string).slice(0, 23)).to.equal(headers.expires.slice(0, 23));
    });

    it("stores date_done in the app's zone, as Celery 5.7's app.now() (redis_date_done_timezone.json)", () => {
      const cases = fixture('redis_date_done_timezone.json').cases as Array<{ conf: { timezone?: string }; stored: { date_done: string } }>;
      for (const c of cases) {
        const at = Date.parse(c.stored.date_done);
        const ours = buildResultMeta('id', 'SUCCESS', 42, null, { timeZone: c.conf.timezone ?? 'UTC' }, at).date_done!;
        expect(ours.slice(0, 23)).to.equal(c.stored.date_done.slice(0, 23));
        expect(ours.slice(-6)).to.equal(c.stored.date_done.slice(-6));
      }
    });
  });

  describe('task_queues', () => {
    it('validates each entry, suggesting the right key', () => {
      expect(() => new Celery('t', { task_queues: [{ name: 'sms', routingKey: 'sms' } as never] })).to.throw(
        ImproperlyConfigured, /task_queues\[0\] \("sms"\) has an unknown key "routingKey": did you mean "routing_key"\?/,
      );
      expect(() => new Celery('t', { task_queues: [{ name: 'sms', queue_argument: {} } as never] })).to.throw(ImproperlyConfigured, /did you mean "queue_arguments"/);
      expect(() => new Celery('t', { task_queues: [{ name: 'sms', max_priority: 10 } as never] })).to.throw(
        ImproperlyConfigured, /max_priority is kombu's shortcut for a queue argument; write queue_arguments: \{ 'x-max-priority': \.\.\. \}/,
      );
      expect(() => new Celery('t', { task_queues: [{ routing_key: 'x' } as never] })).to.throw(ImproperlyConfigured, /task_queues\[0\] needs a name/);
      expect(() => new Celery('t', { task_queues: ['sms' as never] })).to.throw(ImproperlyConfigured, /task_queues\[0\] must be an object/);
      expect(() => new Celery('t', { task_queues: [{ name: 'a', exchange_type: 'headers' as never }] })).to.throw(ImproperlyConfigured, /exchange_type must be 'direct', 'topic' or 'fanout'/);
      expect(() => new Celery('t', { task_queues: [{ name: 'a', durable: 'yes' as never }] })).to.throw(ImproperlyConfigured, /durable must be a boolean/);
      const ok = new Celery('t', { task_queues: [{ name: 'a', exchange: 'a', exchange_type: 'topic', routing_key: 'a.#', queue_arguments: { 'x-max-priority': 5 }, durable: true, auto_delete: false }] });
      expect(ok.conf.task_queues).to.have.length(1);
    });
  });

  describe('transport options', () => {
    it('broker_transport_options: keys ts-celery does not read are named in a warning', () => {
      expect(unsupportedSettings(new Celery('t', { broker_transport_options: { confirm_publish: true } }).conf)).to.deep.equal([]);
      const warnings = unsupportedSettings(new Celery('t', { broker_transport_options: { confirm_publish: false, visibility_timeout: 3600 } }).conf);
      expect(warnings).to.have.length(1);
      expect(warnings[0]).to.match(/^Setting broker_transport_options: keys "confirm_publish", "visibility_timeout" of broker_transport_options have no effect: /);
    });

    it("result_backend_transport_options: global_keyprefix names the keys as Celery does; other keys warn", () => {
      expect(taskKeyPrefix('tsx')).to.equal('tsx_celery-task-meta-');
      expect(taskKeyPrefix('app:')).to.equal('app:celery-task-meta-');
      expect(taskKeyPrefix(undefined)).to.equal('celery-task-meta-');
      expect(unsupportedSettings(new Celery('t', { result_backend_transport_options: { global_keyprefix: 'x' } }).conf)).to.deep.equal([]);
      expect(unsupportedSettings(new Celery('t', { result_backend_transport_options: { retry_policy: {} } }).conf)[0]).to.match(/key "retry_policy" of result_backend_transport_options has no effect/);
      expect(() => new Celery('t', { result_backend_transport_options: { global_keyprefix: 5 } })).to.throw(ImproperlyConfigured, /global_keyprefix must be a string/);
    });
  });

  it('broker_connection_retry_on_startup defaults to null (follow broker_connection_retry), as in Celery 5.7', () => {
    expect(new Celery('t').conf.broker_connection_retry_on_startup).to.equal(null);
    expect(new Celery('t', { broker_connection_retry_on_startup: false }).conf.broker_connection_retry_on_startup).to.equal(false);
  });
});
