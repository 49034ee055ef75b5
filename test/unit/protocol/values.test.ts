import { expect } from 'chai';
import { decodeAmqpTable } from '../../../src/protocol/amqp-headers.js';
import { decodeJson } from '../../../src/protocol/json.js';
import { argsRepr, kwargsRepr, pyRepr } from '../../../src/protocol/repr.js';
import { formatIsoTime, parseIsoTime } from '../../../src/protocol/time.js';
import { fixture } from '../../helpers/fixtures.js';

describe('time formats', () => {
  it('parses every form Celery producers send', () => {
    const utc = Date.UTC(2026, 10, 27, 0, 53, 46, 945);
    expect(parseIsoTime('2026-11-27T00:53:46.945635+00:00')).to.equal(utc);
    expect(parseIsoTime('2026-11-27T01:53:46.945635+01:00')).to.equal(utc);
    expect(parseIsoTime('2026-11-26T19:23:46.945-05:30')).to.equal(utc);
    expect(parseIsoTime('2026-11-27T00:53:46.945Z')).to.equal(utc);
    expect(parseIsoTime('2026-11-27T00:53:46.945635')).to.equal(utc); // naive = UTC
    expect(parseIsoTime('2026-11-27 00:53:46.945')).to.equal(utc);
    expect(parseIsoTime('2026-11-27T00:53:46')).to.equal(utc - 945);
  });
  it('formats like Python isoformat()', () => {
    expect(formatIsoTime(Date.UTC(2026, 10, 27, 0, 53, 46, 945))).to.equal('2026-11-27T00:53:46.945000+00:00');
    expect(formatIsoTime(Date.UTC(2026, 10, 27, 0, 53, 46, 0))).to.equal('2026-11-27T00:53:46+00:00');
  });
});

describe('Python repr for argsrepr/kwargsrepr', () => {
  it('matches what Python writes', () => {
    expect(argsRepr([2, 3])).to.equal('(2, 3)');
    expect(argsRepr(['a'])).to.equal("('a',)");
    expect(argsRepr([])).to.equal('()');
    expect(kwargsRepr({ y: 3 })).to.equal("{'y': 3}");
    expect(pyRepr([null, true, false, 1.5, "it's", { a: [1] }])).to.equal(`[None, True, False, 1.5, "it's", {'a': [1]}]`);
    expect(pyRepr('line\nbreak')).to.equal("'line\\nbreak'");
    expect(argsRepr(['x'.repeat(5000)])).to.have.length(1024);
  });
});

describe('kombu JSON', () => {
  it('unwraps kombu >= 5.3 type tags', () => {
    const v = decodeJson(JSON.stringify([
      { __type__: 'datetime', __value__: '2026-11-27T00:53:46.945635+00:00' },
      { __type__: 'decimal', __value__: '1.10' },
      { __type__: 'uuid', __value__: { hex: '0c53ce34c2813a25b27b9f16469740e6' } },
      { __type__: 'bytes', __value__: 'abc' },
      { __type__: 'base64', __value__: Buffer.from([0xff, 0x00]).toString('base64') },
      { __type__: 'date', __value__: '2026-11-27' },
      { keep: { __type__: 'x', other: 1 } },
    ])) as unknown[];
    expect((v[0] as Date).getTime()).to.equal(Date.UTC(2026, 10, 27, 0, 53, 46, 945));
    expect(v.slice(1, 4)).to.deep.equal(['1.10', '0c53ce34-c281-3a25-b27b-9f16469740e6', 'abc']);
    expect(Buffer.isBuffer(v[4])).to.equal(true);
    expect(v[5]).to.equal('2026-11-27');
    expect(v[6]).to.deep.equal({ keep: { __type__: 'x', other: 1 } });
  });
  it('reads kombu 5.2 flattened values as plain JSON', () => {
    const f = fixture('task_v2_json_types');
    expect(decodeJson(f.body_raw!)).to.deep.equal(f.body_decoded);
  });
});

describe('AMQP tables from py-amqp', () => {
  it('decodes timestamps and decimals to plain values', () => {
    const h = decodeAmqpTable({ t: { '!': 'timestamp', value: 1893553445 }, d: { '!': 'decimal', value: { places: 2, digits: 110 } }, n: [1, { x: 'y' }] });
    expect((h.t as Date).getTime()).to.equal(1893553445000);
    expect(h.d).to.equal(1.1);
    expect(h.n).to.deep.equal([1, { x: 'y' }]);
  });
});

describe('strictness Python shares', () => {
  it('refuses impossible dates and offsets instead of rolling them over', async () => {
    for (const bad of ['2026-02-30T00:00:00', '2026-13-01T00:00:00', '2026-01-01T25:00:00', '2026-01-01T10:61:00', '2026-01-01T00:00:00+25:00']) {
      expect(() => parseIsoTime(bad), bad).to.throw(/not a valid (time|UTC offset)/);
    }
    expect(parseIsoTime('2024-02-29T23:59:59+00:00')).to.equal(Date.UTC(2024, 1, 29, 23, 59, 59));
  });
  it('refuses a body that is not valid UTF-8', async () => {
    const { parseTaskMessage } = await import('../../../src/protocol/message.js');
    const body = Buffer.concat([Buffer.from('[["'), Buffer.from([0xc3, 0x28]), Buffer.from('"], {}, null]')]);
    expect(() => parseTaskMessage({ body, contentType: 'application/json', headers: { task: 't', id: 'i' } })).to.throw(/not valid UTF-8/);
  });
});

describe('masking passwords in URLs', () => {
  it('masks the whole password, even with an unencoded @ or /', async () => {
    const { maskUrl } = await import('../../../src/support/url.js');
    expect(maskUrl('amqp://guest:guest@127.0.0.1:5672//')).to.equal('amqp://guest:**@127.0.0.1:5672//');
    expect(maskUrl('amqp://faults:p@ss-x@y@127.0.0.1:5681/')).to.equal('amqp://faults:**@127.0.0.1:5681/');
    expect(maskUrl('redis://:secret@127.0.0.1:6379/0')).to.equal('redis://:**@127.0.0.1:6379/0');
    expect(maskUrl('amqp://u:pa/ss@h/vhost')).to.equal('amqp://u:**@h/vhost');
    expect(maskUrl('amqp://h:5672/v@x')).to.equal('amqp://h:5672/v@x');
    expect(maskUrl('memory://')).to.equal('memory://');
  });
});
