import { expect } from 'chai';
import { EncodeError } from '../../../src/errors.js';
import { parseTaskMessage } from '../../../src/protocol/message.js';
import { buildTaskMessageV1 } from '../../../src/protocol/message-v1.js';
import { fixture } from '../../helpers/fixtures.js';

interface V1Case {
  label: string;
  properties: Record<string, unknown>;
  headers: Record<string, unknown>;
  body_raw: string;
  body_decoded: Record<string, unknown>;
}

describe('protocol v1 message building (task_protocol = 1, against Celery 5.7 captures)', () => {
  const { cases } = fixture<{ cases: V1Case[] }>('task_v1', 'celery-5.7');
  const [plain, options, aware] = cases as [V1Case, V1Case, V1Case];

  it('builds send_task(args=[2, 3]) as Python: no headers, everything in the body, in its key order', () => {
    const wire = buildTaskMessageV1({
      id: plain.body_decoded.id as string,
      task: 'fxtasks.add',
      args: [2, 3],
      replyTo: plain.properties.reply_to as string,
      priority: 0,
    });
    const body = JSON.parse(wire.body.toString()) as Record<string, unknown>;
    expect(Object.keys(body)).to.deep.equal(Object.keys(JSON.parse(plain.body_raw) as object));
    expect(body).to.deep.equal(plain.body_decoded);
    expect(wire.headers).to.deep.equal({});
    expect(wire.contentType).to.equal(plain.properties.content_type);
    expect(wire.contentEncoding).to.equal(plain.properties.content_encoding);
    expect(wire.correlationId).to.equal(plain.properties.correlation_id);
    expect(wire.replyTo).to.equal(plain.properties.reply_to);
    expect(wire.priority).to.equal(0);
    expect(wire.deliveryMode).to.equal(2);
    expect(wire.expiration).to.equal(undefined);
  });

  it('writes countdown/expires as ISO times in the body and the expiration property', () => {
    const eta = Date.parse(options.body_decoded.eta as string);
    const expires = Date.parse(options.body_decoded.expires as string);
    const now = expires - 60_000;
    const wire = buildTaskMessageV1({ id: 'fixture-v1-0001', task: 'fxtasks.add', args: [2], kwargs: { y: 3 }, eta, expires, priority: 0 }, now);
    const body = JSON.parse(wire.body.toString()) as Record<string, unknown>;
    // JavaScript times have milliseconds, Python's microseconds: the same instant to the millisecond.
    expect(Date.parse(body.eta as string)).to.equal(eta);
    expect(Date.parse(body.expires as string)).to.equal(expires);
    expect({ ...body, eta: null, expires: null }).to.deep.equal({ ...options.body_decoded, eta: null, expires: null });
    expect(wire.expiration).to.equal(options.properties.expiration);
  });

  it('writes aware times with their offset, as Python does', () => {
    const wire = buildTaskMessageV1({
      id: aware.body_decoded.id as string,
      task: 'fxtasks.add',
      args: [1, 1],
      eta: Date.parse('2030-01-02T03:04:05.678Z'),
      expires: Date.parse('2030-01-03T03:04:05Z'),
    });
    const body = JSON.parse(wire.body.toString()) as Record<string, unknown>;
    expect(body.eta).to.equal('2030-01-02T03:04:05.678000+00:00');
    expect(body.expires).to.equal(aware.body_decoded.expires);
  });

  it('reads back as the same task (what a ts-celery worker does with it)', () => {
    const wire = buildTaskMessageV1({ id: 'id-1', task: 't', args: [1], kwargs: { k: 'v' }, eta: Date.parse('2030-01-02T03:04:05Z') });
    const parsed = parseTaskMessage({ ...wire, headers: wire.headers });
    expect(parsed).to.include({ id: 'id-1', task: 't', protocol: 1, eta: Date.parse('2030-01-02T03:04:05Z') });
    expect(parsed.args).to.deep.equal([1]);
    expect(parsed.kwargs).to.deep.equal({ k: 'v' });
  });

  it('refuses what protocol 1 cannot carry, before anything is published', () => {
    const step = { task: 'b', args: [], kwargs: {}, options: {}, subtask_type: null, immutable: false };
    expect(() => buildTaskMessageV1({ id: 'x', task: 'a', embed: { callbacks: null, errbacks: null, chain: [step], chord: null } })).to.throw(EncodeError, /protocol 1 cannot carry a chain/);
    expect(() => buildTaskMessageV1({ id: 'x', task: 'a', args: [10n] })).to.throw(EncodeError, /args\[0\]/);
  });
});
