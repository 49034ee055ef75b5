import { expect } from 'chai';
import { Celery, chain, chord, group, Signature, Worker, type StampingVisitor, type Stamps } from '../../../src/index.js';
import { mergeDictionaries } from '../../../src/canvas/stamping.js';
import { setLogLevel } from '../../../src/support/log.js';
import { fixture } from '../../helpers/fixtures.js';
import { published } from './published.js';

/** Celery 5.7's capture (test/fixtures/celery-5.7/capture_stamping.py). */
interface Case {
  name: string;
  stamp_calls: Array<{ visitor_tag: string | null; append_stamps: boolean; headers: Stamps }>;
  stamped: Record<string, unknown>;
  visitor_calls: Array<Array<[string, string, unknown[], Stamps]> | null>;
  messages: Array<{ headers: Record<string, unknown>; body_decoded: unknown[] }>;
}
interface StampingFixture {
  park_queue: string;
  cases: Case[];
  replace: { messages: Array<{ headers: Record<string, unknown> }> };
  retry: { messages: Array<{ headers: Record<string, unknown> }> };
}
const FX = fixture<StampingFixture>('stamping', 'celery-5.7');

/** The capture's visitor: fixed stamps per hook, every call recorded with the stamps it was given. */
class Tracing implements StampingVisitor {
  calls: Array<[string, string, unknown[], Stamps]> = [];
  constructor(private readonly tag = '') {}
  private rec(hook: string, sig: Signature, headers: Stamps): void {
    const h = structuredClone(headers);
    if (Array.isArray(h.stamped_headers)) h.stamped_headers = [...(h.stamped_headers as string[])].sort();
    this.calls.push([hook, sig.subtaskType ?? sig.task, structuredClone(sig.args), h]);
  }
  onSignature(sig: Signature, h: Stamps): Stamps {
    this.rec('on_signature', sig, h);
    return { mon: `${this.tag}sig:${sig.task}` };
  }
  onGroupStart(g: Signature, h: Stamps): Stamps {
    this.rec('on_group_start', g, h);
    return { grp: `${this.tag}group` };
  }
  onGroupEnd(g: Signature, h: Stamps): void {
    this.rec('on_group_end', g, h);
  }
  onChainStart(c: Signature, h: Stamps): Stamps {
    this.rec('on_chain_start', c, h);
    return { chn: `${this.tag}chain` };
  }
  onChainEnd(c: Signature, h: Stamps): void {
    this.rec('on_chain_end', c, h);
  }
  onChordBody(c: Signature, h: Stamps): Stamps {
    this.rec('on_chord_body', c, h);
    return { body: `${this.tag}body` };
  }
  onCallback(cb: Signature, h: Stamps): Stamps {
    this.rec('on_callback', cb, h);
    return { cb: `${this.tag}link` };
  }
  onErrback(eb: Signature, h: Stamps): Stamps {
    this.rec('on_errback', eb, h);
    return { eb: `${this.tag}error` };
  }
}

/** Python's stamped_headers come from sets: sorted here (recursively), with the capture's queue name and ids removed. */
function normalize(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(normalize);
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      if (k === 'queue' || k === 'task_id' || k === 'reply_to' || k === 'group_id' || k === 'root_id' || k === 'parent_id' || k === 'chord_size' || k === 'group_index') continue;
      out[k] = k === 'stamped_headers' && Array.isArray(v) ? [...(v as string[])].sort() : normalize(v);
    }
    return out;
  }
  return typeof value === 'string' ? value.replace(/fxs\./g, 'T.') : value;
}

function makeApp(): Celery {
  return new Celery('stamping', { broker_url: 'memory://', task_default_queue: 'Q' });
}

/** The same canvases as capture_stamping.py, in TypeScript. */
function build(app: Celery, name: string): Signature {
  const s = (task: string, args: unknown[] = [], immutable = false): Signature =>
    app.signature(`T.${task}`, args, {}, immutable ? { immutable: true } : {});
  switch (name) {
    case 'signature': {
      const sig = s('add', [1, 1], true);
      sig.link(s('add', [2, 2], true));
      sig.linkError(s('errback'));
      return sig;
    }
    case 'append':
      return s('add', [1, 1], true);
    case 'chain': {
      const c = chain([s('add', [1, 1], true), s('add', [2]), s('add', [3])]);
      c.link(s('errback', ['chain-done'], true));
      return c;
    }
    case 'group':
      return group(s('add', [1, 1], true), s('add', [2, 2], true));
    case 'chord':
      return chord([s('add', [1, 1], true), s('add', [2, 2], true)], s('tsum'));
    default:
      throw new Error(name);
  }
}

describe('canvas stamping (against Celery 5.7 fixtures)', () => {
  it('mergeDictionaries merges as Celery\'s _merge_dictionaries (its docstring example, and duplicates)', () => {
    const d1: Record<string, unknown> = { dict: { a: 1 }, list: [1, 2], n: 1 };
    mergeDictionaries(d1, { dict: { b: 2 }, list: [3, 4], n: 2, s: 'x' });
    expect(d1).to.deep.equal({ dict: { a: 1, b: 2 }, list: [1, 2, 3, 4], n: [1, 2], s: 'x' });
    const d2: Record<string, unknown> = { n: 1, none: null };
    mergeDictionaries(d2, { n: 2, none: 5 }, false);
    expect(d2).to.deep.equal({ n: 1, none: null }); // without aggregation the first dict's value stays
  });

  for (const c of FX.cases) {
    it(`${c.name}: the stamped canvas, the visitor's calls and the published stamps equal Celery's`, async () => {
      const app = makeApp();
      try {
        const sig = build(app, c.name);
        const visitors: Array<Tracing | null> = [];
        for (const call of c.stamp_calls) {
          const v = call.visitor_tag === null ? null : new Tracing(call.visitor_tag);
          visitors.push(v);
          sig.stamp(v, { ...call.headers, appendStamps: call.append_stamps });
        }
        // The visitor saw the same parts in the same order, with the same stamps given.
        expect(visitors.map((v) => (v ? v.calls : null))).to.deep.equal(c.visitor_calls.map((calls) => (calls ? normalize(calls) : null)));
        // The stamped canvas is the same dict.
        expect(normalize(sig.toDict())).to.deep.equal(normalize(c.stamped));
        // The messages carry the same stamped_headers and stamps, and the same stamped signatures inside.
        const msgs = await published(app, () => sig.applyAsync());
        expect(msgs).to.have.length(c.messages.length);
        msgs.forEach((m, i) => {
          const py = c.messages[i]!;
          expect([...(m.headers.stamped_headers as string[])].sort()).to.deep.equal([...(py.headers.stamped_headers as string[])].sort());
          expect(normalize(m.headers.stamps)).to.deep.equal(normalize(py.headers.stamps));
          expect(normalize(m.body[2])).to.deep.equal(normalize(py.body_decoded[2]));
        });
      } finally {
        await app.close();
      }
    });
  }

  it('a canvas without stamps sends no stamp headers; custom headers merge over the stamp headers', async () => {
    const app = makeApp();
    try {
      const msgs = await published(app, async () => {
        await app.signature('T.add', [1, 2]).applyAsync();
        await app.signature('T.add', [1, 2]).stamp(null, { tenant: 't1' }).set({ headers: { custom: 1 } }).applyAsync();
      });
      expect(msgs[0]!.headers).to.not.have.property('stamped_headers');
      expect(msgs[1]!.headers).to.include({ custom: 1 });
      expect(msgs[1]!.headers.stamped_headers).to.deep.equal(['tenant']);
      expect(msgs[1]!.headers.stamps).to.deep.equal({ tenant: 't1' });
    } finally {
      await app.close();
    }
  });

  it('stamps are immutable options: a later .set() or applyAsync option does not change them', async () => {
    const app = makeApp();
    try {
      const sig = app.signature('T.add', [1, 2]).stamp(null, { priority: 3 });
      const msgs = await published(app, () => sig.applyAsync([], {}, { priority: 9 }));
      expect(msgs[0]!.headers.stamps).to.deep.equal({ priority: 3 });
    } finally {
      await app.close();
    }
  });

  describe('on a worker (memory broker)', () => {
    const app = new Celery('stamping-worker', { broker_url: 'memory://' });
    const seen: Array<{ task: string; stampedHeaders: string[]; stamps: Record<string, unknown>; retries: number }> = [];
    const record = (self: { name: string; request: { stampedHeaders: string[]; stamps: Record<string, unknown>; retries: number } }): void => {
      seen.push({ task: self.name, stampedHeaders: [...self.request.stampedHeaders].sort(), stamps: self.request.stamps, retries: self.request.retries });
    };
    const add = app.task({ name: 'add', bind: true }, (self, x: number, y: number) => {
      record(self);
      return x + y;
    });
    const tsum = app.task({ name: 'tsum', bind: true }, (self, nums: number[]) => {
      record(self);
      return nums.reduce((a, b) => a + b, 0);
    });
    const onReplaceVisitor: StampingVisitor = { onSignature: () => ({ on_replace: 'replaced' }) };
    const replaceMe = app.task(
      { name: 'replace_me', bind: true, onReplace: (sig) => void sig.stamp(onReplaceVisitor) },
      (self, x: number, y: number) => {
        record(self);
        return self.replace(add.s(x, y));
      },
    );
    const retryOnce = app.task({ name: 'T.retry_once', bind: true }, (self) => {
      record(self);
      if (self.request.retries === 0) throw self.retry({ countdown: 0 });
      return 'retried';
    });
    let worker: Worker;
    before(async () => {
      setLogLevel('critical');
      worker = new Worker(app, { hostname: 'stamping@mem', concurrency: 2 });
      await worker.start();
    });
    after(async () => {
      await worker.stop();
      await app.close();
      setLogLevel('warning');
    });
    beforeEach(() => {
      seen.length = 0;
    });

    it('a stamped task sees its stamps in self.request.stamps / stampedHeaders; an unstamped one sees none', async () => {
      const sig = add.s(1, 2);
      sig.stamp({ onSignature: () => ({ stamp: 42 }) }, { tenant: 't1' });
      expect(await (await sig.applyAsync()).get({ timeout: 2000 })).to.equal(3);
      expect(await (await add.delay(2, 2)).get({ timeout: 2000 })).to.equal(4);
      expect(seen).to.deep.equal([
        { task: 'add', stampedHeaders: ['stamp', 'tenant'], stamps: { stamp: 42, tenant: 't1' }, retries: 0 },
        { task: 'add', stampedHeaders: [], stamps: {}, retries: 0 },
      ]);
    });

    it('every task of a stamped chord (header and body) runs with the stamps', async () => {
      const c = chord([add.s(1, 1), add.s(2, 2)], tsum.s());
      c.stamp({ onSignature: () => ({ stamp: 42 }) });
      expect(await (await c.applyAsync()).get({ timeout: 2000 })).to.equal(6);
      expect(seen).to.have.length(3);
      for (const s of seen) expect(s.stamps.stamp).to.equal(42);
    });

    it('stamps are kept on retry, as in the message Celery 5.7 republishes', async () => {
      const sig = retryOnce.si();
      sig.stamp(new Tracing('r-'), { tenant: 't1' });
      expect(await (await sig.applyAsync()).get({ timeout: 3000 })).to.equal('retried');
      const py = FX.retry.messages[0]!.headers;
      expect(py.retries).to.equal(1);
      const stamps = normalize(py.stamps);
      expect(seen.map((s) => [s.retries, s.stamps])).to.deep.equal([[0, stamps], [1, stamps]]);
    });

    it('self.replace() calls the task\'s onReplace hook: the replacement has its stamps only, as in Celery 5.7', async () => {
      const sig = replaceMe.s(2, 3);
      sig.stamp({ onSignature: () => ({ stamp: 42 }) });
      expect(await (await sig.applyAsync()).get({ timeout: 2000 })).to.equal(5);
      const py = FX.replace.messages[0]!.headers;
      expect(seen).to.deep.equal([
        { task: 'replace_me', stampedHeaders: ['stamp'], stamps: { stamp: 42 }, retries: 0 },
        { task: 'add', stampedHeaders: py.stamped_headers as string[], stamps: py.stamps as Record<string, unknown>, retries: 0 },
      ]);
    });
  });
});
