import { expect } from 'chai';
import { parseTransportOptions } from '../../../src/broker/redis/options.js';
import { renewIntervalMs } from '../../../src/broker/redis/ack-emulation.js';
import { sweepIntervalMs } from '../../../src/broker/redis/restore.js';
import { connectionOptions, parseRedisUrl } from '../../../src/broker/redis/url.js';
import { ImproperlyConfigured } from '../../../src/errors.js';
import { defaultSettings, unsupportedSettings } from '../../../src/app/config.js';

describe('Redis broker: broker_transport_options', () => {
  it("has kombu's defaults", () => {
    const { options, warnings } = parseTransportOptions({});
    expect(options).to.deep.include({
      visibility_timeout: 3600,
      global_keyprefix: '',
      priority_steps: [0, 3, 6, 9],
      sep: '\x06\x16',
      queue_order_strategy: 'round_robin',
      unacked_key: 'unacked',
      unacked_index_key: 'unacked_index',
      unacked_mutex_key: 'unacked_mutex',
      unacked_mutex_expire: 300,
      unacked_restore_limit: null,
    });
    expect(warnings).to.deep.equal([]);
    // kombu's event loop sweeps every interval x throttle = 100 s.
    expect(sweepIntervalMs(options.unacked_restore_interval, options.unacked_restore_throttle)).to.equal(100_000);
  });

  it('takes the documented keys and sorts priority steps', () => {
    const { options } = parseTransportOptions({
      visibility_timeout: 2.5,
      global_keyprefix: 'shop:',
      priority_steps: [9, 0, 5],
      queue_order_strategy: 'sorted',
      unacked_restore_interval: 1,
      unacked_restore_throttle: 0,
      master_name: 'mymaster',
    });
    expect(options).to.deep.include({ visibility_timeout: 2.5, global_keyprefix: 'shop:', priority_steps: [0, 5, 9], queue_order_strategy: 'sorted', master_name: 'mymaster' });
    expect(sweepIntervalMs(options.unacked_restore_interval, options.unacked_restore_throttle)).to.equal(1000);
  });

  it('refuses an unknown key, suggesting the right one', () => {
    expect(() => parseTransportOptions({ visiblity_timeout: 10 })).to.throw(ImproperlyConfigured, /did you mean "visibility_timeout"/);
    expect(() => parseTransportOptions({ global_key_prefix: 'x' })).to.throw(ImproperlyConfigured, /did you mean "global_keyprefix"/);
  });

  it('refuses wrong types with the expected one', () => {
    expect(() => parseTransportOptions({ visibility_timeout: '3600' })).to.throw(ImproperlyConfigured, /visibility_timeout must be a number > 0/);
    expect(() => parseTransportOptions({ priority_steps: [0, 12] })).to.throw(ImproperlyConfigured, /integers from 0 to 9/);
    expect(() => parseTransportOptions({ queue_order_strategy: 'random' })).to.throw(ImproperlyConfigured, /'round_robin', 'sorted' or 'priority'/);
  });

  it('accepts kombu options it does not implement, with a warning saying why', () => {
    const { warnings } = parseTransportOptions({ ack_emulation: false, max_connections: 20, ack_emulation_default: undefined });
    expect(warnings).to.have.length(2);
    expect(warnings[0]).to.match(/ack_emulation is ignored .* always on/);
    expect(parseTransportOptions({ ack_emulation: true }).warnings).to.deep.equal([]);
  });

  it('leaves kombu\'s keys to the Redis transport: no "has no effect" warning from the settings table', () => {
    const conf = { ...defaultSettings(), broker_transport_options: { visibility_timeout: 10, global_keyprefix: 'x' } };
    expect(unsupportedSettings({ ...conf, broker_url: 'redis://h/0' })).to.deep.equal([]);
    expect(unsupportedSettings({ ...conf, broker_url: 'sentinel://h:26379' })).to.deep.equal([]);
    expect(unsupportedSettings({ ...conf, broker_url: 'amqp://h//' }).join()).to.match(/"visibility_timeout", "global_keyprefix" of broker_transport_options have no effect/);
  });

  it('renews leases four times per visibility timeout, between 250 ms and a minute', () => {
    expect(renewIntervalMs(2)).to.equal(500);
    expect(renewIntervalMs(0.5)).to.equal(250);
    expect(renewIntervalMs(3600)).to.equal(60_000);
  });
});

describe('Redis broker: URLs', () => {
  const transport = parseTransportOptions({}).options;

  it("reads kombu's redis:// forms: db from the path, an empty path is db 0, the password decoded", () => {
    expect(parseRedisUrl('redis://localhost')).to.deep.include({ scheme: 'redis', db: 0, password: undefined, hosts: [{ host: 'localhost', port: 6379 }] });
    expect(parseRedisUrl('redis://:p%40ss@10.0.0.1:6380/7')).to.deep.include({ db: 7, password: 'p@ss', username: undefined, hosts: [{ host: '10.0.0.1', port: 6380 }] });
    expect(parseRedisUrl('redis://user:pw@h//')).to.deep.include({ db: 0, username: 'user', password: 'pw' });
  });

  it('refuses a non-numeric database without printing the password', () => {
    let err: Error | null = null;
    try {
      parseRedisUrl('redis://:Sup3rSecret@h:6379/celery');
    } catch (e) {
      err = e as Error;
    }
    expect(err).to.be.instanceOf(ImproperlyConfigured);
    expect(err!.message).to.match(/must be an integer/).and.not.match(/Sup3rSecret/);
  });

  it('rediss:// turns TLS on, with ssl_cert_reqs from the query', () => {
    const opts = connectionOptions(parseRedisUrl('rediss://:pw@h:6380/1?ssl_cert_reqs=CERT_NONE'), transport, { tls: null, connectTimeout: 4 });
    expect(opts).to.deep.include({ host: 'h', port: 6380, db: 1, password: 'pw', tls: { rejectUnauthorized: false } });
    expect(connectionOptions(parseRedisUrl('redis://h'), transport, { tls: null, connectTimeout: 4 }).tls).to.equal(undefined);
  });

  it('sentinel:// lists every sentinel and needs master_name', () => {
    const endpoint = parseRedisUrl('sentinel://:pw@s1:26379/2;sentinel://s2:26380;sentinel://s3');
    expect(endpoint.hosts).to.deep.equal([{ host: 's1', port: 26379 }, { host: 's2', port: 26380 }, { host: 's3', port: 26379 }]);
    expect(() => connectionOptions(endpoint, transport, { tls: null, connectTimeout: 4 })).to.throw(ImproperlyConfigured, /master_name/);
    const withMaster = parseTransportOptions({ master_name: 'mymaster', sentinel_kwargs: { password: 'spw' } }).options;
    expect(connectionOptions(endpoint, withMaster, { tls: null, connectTimeout: 4 })).to.deep.include({
      name: 'mymaster', db: 2, password: 'pw', sentinelPassword: 'spw', sentinels: endpoint.hosts,
    });
  });

  it("refuses schemes and lists that aren't kombu's", () => {
    expect(() => parseRedisUrl('redis+socket:///tmp/redis.sock')).to.throw(ImproperlyConfigured, /use redis:\/\/, rediss:\/\/ or sentinel:\/\//);
    expect(() => parseRedisUrl('redis://a;redis://b')).to.throw(ImproperlyConfigured, /only sentinel:\/\/ URLs/);
  });
});
