import { readFileSync } from 'node:fs';
import { expect } from 'chai';
import { defaultSettings } from '../../../src/app/config.js';
import { buildReply, buildRequest, isForNode, nodeQueue, parseRequest, replyQueue } from '../../../src/control/mailbox.js';
import { ImproperlyConfigured } from '../../../src/errors.js';

const FIXTURE = JSON.parse(readFileSync(new URL('../../fixtures/celery-5.7/pidbox_requests_replies.json', import.meta.url), 'utf8')) as {
  node: string;
  exchanges: Array<{ method: string; request: { body_raw: string; headers: Record<string, unknown>; properties: Record<string, unknown> }; replies: Array<{ body_raw: string; headers: Record<string, unknown>; properties: Record<string, unknown> }> }>;
};

describe("remote control on the wire (kombu's pidbox)", () => {
  const conf = defaultSettings();

  it('reads every request Celery 5.7 sent, and routes each by its destination', () => {
    for (const x of FIXTURE.exchanges) {
      const req = parseRequest({ body: Buffer.from(x.request.body_raw), contentType: 'application/json', headers: x.request.headers });
      expect(req.method).to.equal(x.method);
      if (req.destination) expect(isForNode(req, FIXTURE.node)).to.equal(req.destination.includes(FIXTURE.node));
      if (x.replies.length) expect(req.ticket).to.be.a('string');
    }
  });

  it("builds a request with Celery's body keys, headers and properties", () => {
    const py = FIXTURE.exchanges.find((x) => x.method === 'ping')!.request;
    const wire = buildRequest(
      { method: 'ping', arguments: {}, destination: ['n@h'], pattern: null, matcher: null, ticket: 't', reply_to: { exchange: 'reply.celery.pidbox', routing_key: 'oid' } },
      7,
      1_800_000_000_500,
    );
    expect(Object.keys(JSON.parse(wire.body.toString()))).to.deep.equal(Object.keys(JSON.parse(py.body_raw)));
    expect(Object.keys(wire.headers)).to.deep.equal(Object.keys(py.headers));
    expect(wire.headers).to.deep.equal({ clock: 7, expires: 1_800_000_000.5 });
    expect({ deliveryMode: wire.deliveryMode, contentType: wire.contentType, priority: wire.priority }).to.deep.equal({
      deliveryMode: py.properties.delivery_mode, contentType: py.properties.content_type, priority: py.properties.priority,
    });
  });

  it('builds a reply as a 5.7 worker does', () => {
    const py = FIXTURE.exchanges.find((x) => x.method === 'ping')!.replies[0]!;
    const wire = buildReply(FIXTURE.node, { ok: 'pong' }, 'tk', 3);
    expect(wire.body.toString().replace(/\s/g, '')).to.equal(py.body_raw.replace(/\s/g, ''));
    expect(Object.keys(wire.headers)).to.deep.equal(Object.keys(py.headers));
    expect(wire.deliveryMode).to.equal(py.properties.delivery_mode);
  });

  it('declares the mailbox and reply queues as Celery 5.7 (exclusive, auto-delete, ttl/expires)', () => {
    expect(nodeQueue(conf, 'w@h')).to.deep.include({ name: 'w@h.celery.pidbox', durable: false, autoDelete: true, exclusive: true, routingKey: '' });
    expect(nodeQueue(conf, 'w@h').arguments).to.deep.equal({ 'x-expires': 10_000, 'x-message-ttl': 300_000 });
    expect(nodeQueue(conf, 'w@h').exchange).to.deep.equal({ name: 'celery.pidbox', type: 'fanout', durable: false });
    expect(replyQueue(conf, 'oid')).to.deep.include({ name: 'oid.reply.celery.pidbox', routingKey: 'oid' });
    expect(() => nodeQueue({ ...conf, control_queue_durable: true }, 'w@h')).to.throw(ImproperlyConfigured);
  });

  it('routes by destination, then by pattern (glob or pcre)', () => {
    const base = { method: 'ping', arguments: {}, pattern: null, matcher: null };
    expect(isForNode({ ...base, destination: null }, 'a@h')).to.equal(true);
    expect(isForNode({ ...base, destination: [] }, 'a@h')).to.equal(true);
    expect(isForNode({ ...base, destination: ['b@h'] }, 'a@h')).to.equal(false);
    expect(isForNode({ ...base, destination: null, pattern: 'a@*', matcher: 'glob' }, 'a@h')).to.equal(true);
    expect(isForNode({ ...base, destination: null, pattern: '^b', matcher: 'pcre' }, 'a@h')).to.equal(false);
  });
});
