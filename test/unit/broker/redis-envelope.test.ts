import { expect } from 'chai';
import { buildEnvelope, parseUnackedRecord, readEnvelope, redeliveredEnvelope } from '../../../src/broker/redis/envelope.js';
import { ProtocolError } from '../../../src/errors.js';
import { parseTaskMessage, type WireMessage } from '../../../src/protocol/message.js';
import { fixture } from '../../helpers/fixtures.js';

type Json = Record<string, unknown>;
interface ListEntry {
  raw: string;
  json: Json;
  body_decoded: unknown;
}
interface KeyDump {
  type: string;
  value: unknown;
}

/** Keys in order, recursively: Python's json.dumps keeps insertion order, and so must we. */
function shape(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(shape);
  if (v && typeof v === 'object') return Object.entries(v as Json).map(([k, x]) => [k, shape(x)]);
  return typeof v;
}

/** `"RPUSH" "fx.a" "<json>"` from a MONITOR line: the pushed document. */
function monitorPayload(line: string): Json {
  const m = /^"[A-Z]+" "(?:[^"\\]|\\.)*" "((?:[^"\\]|\\.)*)"$/.exec(line)!;
  return JSON.parse(JSON.parse(`"${m[1]!.replace(/\\x([0-9a-f]{2})/g, '\\u00$1')}"`)) as Json;
}

/** The WireMessage a TypeScript producer would hand the broker for a captured envelope. */
function wireFrom(env: Json): WireMessage {
  const p = env.properties as Json;
  const m: WireMessage = {
    body: Buffer.from(env.body as string, 'base64'),
    contentType: env['content-type'] as string,
    contentEncoding: env['content-encoding'] as string,
    headers: env.headers as Json,
    correlationId: p.correlation_id as string,
    replyTo: p.reply_to as string,
    deliveryMode: p.delivery_mode as 2,
    priority: p.priority as number,
  };
  if (p.expiration !== undefined) m.expiration = p.expiration as string;
  return m;
}

for (const version of ['celery-5.7', 'celery-5.2.6']) {
  describe(`kombu's Redis envelope (against Celery ${version.slice(7)} captures)`, () => {
    const keys = fixture<{ keys: Record<string, KeyDump> }>('redis_broker_envelopes', version).keys;
    const list = (name: string): ListEntry[] => keys[name]!.value as ListEntry[];
    const samples: Array<[string, ListEntry]> = [
      ['delay() on the default queue', list('celery')[0]!],
      ['countdown + expires (expiration property)', list('fx.b').find((e) => (e.json.properties as Json).expiration)!],
      ['priority 9 on the step-9 sub-queue', list('fx.a\x06\x169')[0]!],
      ['a topic exchange route', list('fx.topic')[0]!],
    ];

    for (const [what, entry] of samples) {
      it(`builds the same document as Python: ${what}`, () => {
        const p = entry.json.properties as Json;
        const info = p.delivery_info as { exchange: string; routing_key: string };
        const ours = JSON.parse(buildEnvelope(wireFrom(entry.json), info.exchange, info.routing_key, p.delivery_tag as string)) as Json;
        expect(ours).to.deep.equal(entry.json);
        expect(shape(ours)).to.deep.equal(shape(entry.json));
      });

      it(`reads it back into the message Python sent: ${what}`, () => {
        const read = readEnvelope(entry.raw, 'ignored');
        const p = entry.json.properties as Json;
        const info = p.delivery_info as { exchange: string; routing_key: string };
        expect(read.deliveryTag).to.equal(p.delivery_tag);
        expect(read).to.deep.include({ exchange: info.exchange, routingKey: info.routing_key, redelivered: false });
        expect(JSON.parse(read.message.body.toString('utf8'))).to.deep.equal(entry.body_decoded);
        const task = parseTaskMessage(read.message);
        expect(task.id).to.equal((entry.json.headers as Json).id);
        expect(task.priority).to.equal(p.priority);
        expect(task.replyTo).to.equal(p.reply_to);
      });
    }

    it("parses the ack emulation's unacked record and marks a restore as kombu does", () => {
      const restore = fixture<{ keys_after_kill: Record<string, KeyDump>; monitor: string[] }>('redis_broker_restore', version);
      const [tag, value] = Object.entries(restore.keys_after_kill.unacked!.value as Record<string, { raw: string }>)[0]!;
      const record = parseUnackedRecord(value.raw)!;
      expect(record).to.deep.include({ exchange: '', routingKey: 'fx.a' });
      expect((record.envelope.properties as Json).delivery_tag).to.equal(tag);
      const pushed = monitorPayload(restore.monitor.find((l) => l.startsWith('"RPUSH"'))!);
      const again = redeliveredEnvelope(record.envelope)!;
      expect(JSON.parse(again.json)).to.deep.equal(pushed);
      expect(shape(JSON.parse(again.json))).to.deep.equal(shape(pushed));
      expect(again.priority).to.equal(0);
      const reread = readEnvelope(again.json, 'fx.a');
      expect(reread.redelivered).to.equal(true);
      expect(reread.message.headers.redelivered).to.equal(true);
    });
  });
}

describe("kombu's Redis envelope: what is not one", () => {
  const cases: Array<[string, string, RegExp]> = [
    ['not JSON', 'hello', /not JSON/],
    ['a JSON array', '[1,2,3]', /not a JSON object/],
    ['no properties', '{"body": "", "headers": {}}', /no "properties"/],
    ['headers not an object', '{"properties": {}, "headers": [1]}', /"headers" is not an object/],
    ['a body that is not a string', '{"properties": {"body_encoding": "base64"}, "body": 5}', /not a string/],
    ['an unknown body encoding', '{"properties": {"body_encoding": "rot13"}, "body": "x"}', /unsupported body_encoding/],
  ];
  for (const [what, raw, reason] of cases) {
    it(`marks ${what} unreadable, and the protocol layer rejects it with the reason`, () => {
      const read = readEnvelope(raw, 'q1');
      expect(read.deliveryTag).to.equal(null);
      expect(read.routingKey).to.equal('q1');
      expect(read.message.unreadable).to.match(reason);
      expect(() => parseTaskMessage(read.message)).to.throw(ProtocolError, /unreadable envelope/);
    });
  }

  it('reads a utf-8 body and a missing one', () => {
    expect(readEnvelope('{"properties": {"body_encoding": "utf-8"}, "body": "[[], {}, null]"}', 'q').message.body.toString()).to.equal('[[], {}, null]');
    expect(readEnvelope('{"properties": {}}', 'q').message.body.length).to.equal(0);
  });
});
