import { expect } from 'chai';
import { deflateSync } from 'node:zlib';
import { ContentDisallowed, EncodeError, ProtocolError } from '../../../src/errors.js';
import { encodeAmqpTable } from '../../../src/protocol/amqp-headers.js';
import { buildTaskMessage, parseTaskMessage, type IncomingMessage } from '../../../src/protocol/message.js';
import { parseIsoTime } from '../../../src/protocol/time.js';
import { amqpTypesOf, fixture, fixtureBody, type MessageFixture } from '../../helpers/fixtures.js';

/** Turns a fixture into what a broker hands the protocol layer. */
function incoming(f: MessageFixture): IncomingMessage {
  const p = f.properties;
  return {
    body: fixtureBody(f),
    contentType: p.content_type as string | undefined,
    contentEncoding: p.content_encoding as string | undefined,
    headers: f.headers,
    correlationId: p.correlation_id as string | undefined,
    replyTo: p.reply_to as string | undefined,
    priority: p.priority as number | undefined,
  };
}

interface ProbeCase {
  task_id: string;
  sent: { headers: Record<string, unknown>; properties: Record<string, unknown>; body: string | { base64: string } };
}

function probeIncoming(c: ProbeCase): IncomingMessage {
  const body = typeof c.sent.body === 'string' ? Buffer.from(c.sent.body) : Buffer.from(c.sent.body.base64, 'base64');
  return {
    body,
    contentType: c.sent.properties.content_type as string | undefined,
    contentEncoding: c.sent.properties.content_encoding as string | undefined,
    headers: c.sent.headers,
  };
}

describe('protocol v2 message building (against Python 5.2.6 captures)', () => {
  const delay = fixture('task_v2_delay');

  it('builds add.delay(2, 3) with the headers, order, types and body Python sends', () => {
    const h = delay.headers;
    const wire = buildTaskMessage({
      id: h.id as string,
      task: h.task as string,
      args: [2, 3],
      origin: h.origin as string,
      replyTo: delay.properties.reply_to as string,
      priority: 0,
    });
    expect(Object.keys(wire.headers)).to.deep.equal(Object.keys(h));
    expect(wire.headers).to.deep.equal(h);
    expect(JSON.parse(wire.body.toString())).to.deep.equal(delay.body_decoded);
    expect(wire.contentType).to.equal('application/json');
    expect(wire.contentEncoding).to.equal('utf-8');
    expect(wire.correlationId).to.equal(h.id);
    expect(wire.deliveryMode).to.equal(2);
    expect(wire.priority).to.equal(0);
    expect(wire.expiration).to.equal(undefined);
  });

  it('types every header so py-amqp reads it (integers as signed 32-bit I)', () => {
    const wire = buildTaskMessage({ id: 'x', task: 't', args: [2, 3], origin: 'o' });
    expect(amqpTypesOf(encodeAmqpTable(wire.headers))).to.deep.equal(delay.header_amqp_types);
  });

  it('never uses the b/s tags py-amqp misreads, for any integer', () => {
    const types = amqpTypesOf(encodeAmqpTable({ a: 0, b: -5, c: 200, d: 300, e: 40_000, f: [300, 200], g: { h: 127 } }));
    expect(types).to.deep.equal({ a: 'I', b: 'I', c: 'I', d: 'I', e: 'I', f: 'A[I,I]', g: 'F' });
    expect(amqpTypesOf(encodeAmqpTable({ big: 3_000_000_000 })).big).to.equal('l');
  });

  it('turns countdown/expires into ISO eta/expires headers and the expiration property', () => {
    const f = fixture('task_v2_apply_async_options');
    const now = Date.parse('2026-11-27T01:17:27.240Z');
    const wire = buildTaskMessage(
      { id: 'fixture-custom-task-id-0001', task: 'fxtasks.add', args: [2], kwargs: { y: 3 }, eta: now + 10_000, expires: now + 60_000, priority: 5, origin: 'gen1@vm' },
      now,
    );
    expect(wire.headers.eta).to.equal('2026-11-27T01:17:37.240000+00:00');
    expect(wire.headers.expires).to.equal('2026-11-27T01:18:27.240000+00:00');
    expect(wire.expiration).to.equal(f.properties.expiration);
    expect(wire.priority).to.equal(5);
    expect(wire.headers.argsrepr).to.equal(f.headers.argsrepr);
    expect(wire.headers.kwargsrepr).to.equal(f.headers.kwargsrepr);
    expect(amqpTypesOf(encodeAmqpTable(wire.headers))).to.deep.equal(f.header_amqp_types);
  });

  it('sends timelimit as [hard, soft] and keeps custom headers', () => {
    const f = fixture('task_v2_limits_shadow_headers');
    const wire = buildTaskMessage({
      id: 'i', task: 'fxtasks.add', args: [2, 3], timeLimit: [30, 20], shadow: f.headers.shadow as string,
      ignoreResult: true, extraHeaders: { 'x-custom': 'value' },
    });
    expect(wire.headers.timelimit).to.deep.equal(f.headers.timelimit);
    expect(wire.headers.shadow).to.equal(f.headers.shadow);
    expect(wire.headers.ignore_result).to.equal(true);
    expect(wire.headers['x-custom']).to.equal('value');
  });

  it('rejects arguments JSON cannot carry before anything is built', () => {
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(() => buildTaskMessage({ id: 'i', task: 't', args: [10n] })).to.throw(EncodeError, /args\[0\].*BigInt/s);
    expect(() => buildTaskMessage({ id: 'i', task: 't', args: [cyclic] })).to.throw(EncodeError, /cycle/);
    expect(() => buildTaskMessage({ id: 'i', task: 't', args: [], kwargs: { cb: () => 1 } })).to.throw(EncodeError, /cb.*function/);
    expect(() => buildTaskMessage({ id: 'i', task: 't', args: [NaN] })).to.throw(EncodeError, /NaN/);
  });
});

describe('protocol message parsing (every Python capture)', () => {
  it('reads add.delay(2, 3)', () => {
    const f = fixture('task_v2_delay');
    const m = parseTaskMessage(incoming(f));
    expect(m).to.include({ id: f.headers.id, task: 'fxtasks.add', retries: 0, eta: null, expires: null, protocol: 2 });
    expect(m.args).to.deep.equal([2, 3]);
    expect(m.kwargs).to.deep.equal({});
    expect(m.rootId).to.equal(f.headers.id);
    expect(m.replyTo).to.equal(f.properties.reply_to);
    expect(m.timeLimit).to.deep.equal([null, null]);
  });

  it('reads eta/expires with offsets, naive times as UTC, and Berlin time', () => {
    const aware = parseTaskMessage(incoming(fixture('task_v2_apply_async_options')));
    expect(aware.eta).to.equal(Date.parse('2026-11-27T01:17:37.240Z'));
    expect(aware.expires).to.equal(Date.parse('2026-11-27T01:18:27.240Z'));
    expect(aware.priority).to.equal(5);
    expect(aware.kwargs).to.deep.equal({ y: 3 });

    const naive = fixture('task_v2_eta_naive');
    expect(parseTaskMessage(incoming(naive)).eta).to.equal(Date.parse(`${naive.headers.eta as string}Z`));

    const berlin = fixture('task_v2_eta_timezone_berlin');
    const eta = berlin.headers.eta as string;
    expect(eta).to.match(/\+01:00$/);
    expect(parseTaskMessage(incoming(berlin)).eta).to.equal(new Date(eta).getTime());
  });

  it('reads protocol 1 messages', () => {
    const f = fixture('task_v1');
    const m = parseTaskMessage(incoming(f));
    expect(m.protocol).to.equal(1);
    expect(m.task).to.equal((f.body_decoded as { task: string }).task);
    expect(m.args).to.deep.equal((f.body_decoded as { args: unknown[] }).args);
  });

  it('reads zlib-compressed bodies', () => {
    const m = parseTaskMessage(incoming(fixture('task_v2_compression_zlib')));
    expect(m.args.length).to.be.greaterThan(0);
  });

  it('refuses to inflate a compressed body beyond the size limit', () => {
    const bomb = deflateSync(Buffer.alloc(70 * 1024 * 1024, 0x20));
    expect(() =>
      parseTaskMessage({ body: bomb, contentType: 'application/json', headers: { task: 't', id: 'i', compression: 'application/x-gzip' } }),
    ).to.throw(ProtocolError, /decompress/);
  });

  it('reads canvas embeds (chain, callbacks) and retry republishes', () => {
    const chain = parseTaskMessage(incoming(fixture('task_v2_chain')));
    expect(chain.embed.chain).to.be.an('array').with.length.greaterThan(0);
    const link = parseTaskMessage(incoming(fixture('task_v2_link_callbacks')));
    expect(link.embed.callbacks).to.be.an('array').with.length.greaterThan(0);
    const retried = fixture<{ republished_by_worker_retry: MessageFixture[] }>('task_v2_retry_republished').republished_by_worker_retry[0]!;
    const m = parseTaskMessage(incoming(retried));
    expect(m.retries).to.equal(1);
    expect(m.parentId).to.equal(m.id);
    expect(m.eta).to.be.a('number');
  });

  it('refuses pickle and yaml unread', () => {
    expect(() => parseTaskMessage(incoming(fixture('task_v2_pickle')))).to.throw(ContentDisallowed, /x-python-serialize/);
    expect(() => parseTaskMessage(incoming(fixture('task_v2_yaml')))).to.throw(ContentDisallowed, /yaml/);
  });

  describe('hand-built messages from the foreign-producer probe', () => {
    const probe = fixture<{ cases: Record<string, ProbeCase> }>('interop_foreign_producer_probe').cases;
    for (const name of ['full_headers_like_python', 'minimal_headers_task_id_only', 'embed_null', 'embed_empty_object', 'kwargs_only', 'no_content_encoding_property', 'protocol_v1_body', 'celery_5_3_plus_headers_to_5_2_worker']) {
      it(`accepts ${name} (a Python worker ran it)`, () => {
        const m = parseTaskMessage(probeIncoming(probe[name]!));
        expect(m.id).to.equal(probe[name]!.task_id);
      });
    }
    it('rejects the messages that crash a Python worker, with a reason', () => {
      expect(() => parseTaskMessage(probeIncoming(probe.body_two_elements_no_embed!))).to.throw(ProtocolError, /\[args, kwargs, embed\]/);
      expect(() => parseTaskMessage(probeIncoming(probe.missing_id_header!))).to.throw(ProtocolError, /id/);
      expect(() => parseTaskMessage(probeIncoming(probe.no_content_type_property!))).to.throw(ContentDisallowed);
      expect(() => parseTaskMessage(probeIncoming(probe.pickle_body_to_json_only_worker!))).to.throw(ContentDisallowed);
    });
    it('reads a JavaScript toISOString() eta', () => {
      const c = probe.eta_js_toISOString_Z_millis_plus2s!;
      expect(parseTaskMessage(probeIncoming(c)).eta).to.equal(parseIsoTime(c.sent.headers.eta as string));
    });
  });

  it('rejects wrong types where they change what runs', () => {
    const base = { contentType: 'application/json', body: Buffer.from('[[1], {}, null]') };
    expect(() => parseTaskMessage({ ...base, headers: { task: 't', id: 'i', retries: 'x' } })).to.throw(ProtocolError, /retries/);
    expect(() => parseTaskMessage({ ...base, headers: { task: 't', id: 'i', eta: 12 } })).to.throw(ProtocolError, /eta/);
    expect(() => parseTaskMessage({ ...base, headers: { task: 't', id: 'i', eta: 'tomorrow' } })).to.throw(ProtocolError, /ISO/);
    expect(() => parseTaskMessage({ ...base, headers: { task: 't', id: 'i', timelimit: [1] } })).to.throw(ProtocolError, /timelimit/);
    expect(() => parseTaskMessage({ ...base, headers: { task: 7, id: 'i' } })).to.throw(ProtocolError, /task/);
    expect(() => parseTaskMessage({ ...base, body: Buffer.from('[[1], [], null]'), headers: { task: 't', id: 'i' } })).to.throw(ProtocolError, /kwargs/);
    expect(() => parseTaskMessage({ ...base, body: Buffer.from('{"a": 1}'), headers: {} })).to.throw(ProtocolError, /not a Celery task/);
    expect(() => parseTaskMessage({ ...base, body: Buffer.from('[[1], {}'), headers: { task: 't', id: 'i' } })).to.throw(ProtocolError, /invalid JSON/);
  });

  it('round-trips what it builds', () => {
    const wire = buildTaskMessage({ id: 'r1', task: 'tasks.echo', args: ['a', 1, null], kwargs: { k: [1, 2] }, retries: 2, eta: 1_800_000_000_123, parentId: 'p', rootId: 'root' });
    const m = parseTaskMessage({ body: wire.body, contentType: wire.contentType, contentEncoding: wire.contentEncoding, headers: wire.headers });
    expect(m).to.include({ id: 'r1', task: 'tasks.echo', retries: 2, eta: 1_800_000_000_123, parentId: 'p', rootId: 'root' });
    expect(m.args).to.deep.equal(['a', 1, null]);
    expect(m.kwargs).to.deep.equal({ k: [1, 2] });
  });
});

describe('Celery 5.7 captures (kombu 5.7: new headers, tagged JSON)', () => {
  const names = ['task_v2_delay', 'task_v2_apply_async_options', 'task_v2_send_task', 'task_v2_eta_timezone_berlin', 'task_v2_explicit_queue', 'task_v2_limits_shadow_headers', 'task_v2_link_callbacks', 'task_v2_chain', 'task_v2_compression_zlib'];
  for (const name of names) {
    it(`reads ${name}`, () => {
      const f = fixture(name, 'celery-5.7');
      const m = parseTaskMessage(incoming(f));
      expect(m.id).to.equal(f.headers.id);
      expect(m.ignoreResult).to.equal(f.headers.ignore_result === true); // 5.7 may send null
      expect(m.extraHeaders).to.include.keys('replaced_task_nesting', 'stamps');
    });
  }
  it('unwraps tagged datetimes, decimals and uuids in args', () => {
    const m = parseTaskMessage(incoming(fixture('task_v2_json_types', 'celery-5.7')));
    const flat = JSON.stringify(m.args) + JSON.stringify(m.kwargs);
    expect(flat).not.to.contain('__type__');
    expect([...m.args, ...Object.values(m.kwargs)].some((v) => v instanceof Date)).to.equal(true);
  });
  it('reads a 5.7 retry republish (it keeps the producer origin)', () => {
    const f = fixture<{ republished_by_worker_retry: MessageFixture[] }>('task_v2_retry_republished', 'celery-5.7');
    const m = parseTaskMessage(incoming(f.republished_by_worker_retry[0]!));
    expect(m.retries).to.equal(1);
  });
});
