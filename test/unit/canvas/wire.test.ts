import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'chai';
import { Celery, chain, chord, group, Signature } from '../../../src/index.js';
import { CHORD_CLAIM_EXTEND_LUA, CHORD_CLEANUP_LUA, CHORD_PART_RETURN_LUA } from '../../../src/backend/redis-chord.js';
import { fixture } from '../../helpers/fixtures.js';
import { REPO_ROOT } from '../../helpers/python.js';
import { published, type Published } from './published.js';

const V57 = 'celery-5.7';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** The structure of a value with ids, queue names and oids replaced, so two captures compare equal. */
function shape(value: unknown, names: Map<string, string> = new Map()): unknown {
  if (typeof value === 'string') {
    if (UUID.test(value)) {
      if (!names.has(value)) names.set(value, `ID${names.size}`);
      return names.get(value);
    }
    return /^fxc?[.-]/.test(value) ? value.replace(/^fxc?[.-]/, 'T.').replace(/park-.*|work-.*/, 'Q') : value;
  }
  if (Array.isArray(value)) return value.map((v) => shape(v, names));
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, shape(v, names)]));
  }
  return value;
}

/** What an app with the fixtures' tasks publishes while `run` runs (see ./published.ts). */
async function publishedBy(run: (app: Celery) => Promise<unknown>): Promise<Published[]> {
  const app = new Celery('wire', { broker_url: 'memory://', task_default_queue: 'Q' });
  app.task({ name: 'T.add' }, (x: number, y: number) => x + y);
  app.task({ name: 'T.tsum' }, (nums: number[]) => nums.length);
  try {
    return await published(app, () => run(app));
  } finally {
    await app.close();
  }
}

describe('canvas wire format (against Celery 5.7 fixtures)', () => {
  it('chord header messages: group, group_index and the body in embed.chord, as Python sends them', async () => {
    const fx = fixture<{ header_messages: Array<{ headers: Record<string, unknown>; body_decoded: unknown[] }> }>('task_v2_chord', V57);
    const msgs = await publishedBy(async (app) => {
      await chord([app.signature('T.add', [1, 1]), app.signature('T.add', [2, 2])], app.signature('T.tsum')).applyAsync();
    });
    expect(msgs).to.have.length(2);
    msgs.forEach((m, i) => {
      const py = fx.header_messages[i]!;
      expect(m.headers.group_index).to.equal(i);
      expect(m.headers.group).to.match(UUID).and.equal(msgs[0]!.headers.group);
      expect(m.headers.root_id).to.equal(m.headers.id); // applied outside a task: each member is its own root
      // Same embed structure (ids, queue names and oids aside): the body is frozen with the group id.
      const names = new Map<string, string>();
      const pyBody = shape(py.body_decoded, names) as unknown[];
      const tsBody = shape(m.body, new Map()) as unknown[];
      const stripQueue = (b: unknown[]): unknown => {
        const embed = b[2] as { chord: { options: Record<string, unknown> } };
        delete embed.chord.options.queue;
        return b;
      };
      expect(stripQueue(tsBody)).to.deep.equal(stripQueue(pyBody));
    });
  });

  it('a chain with a group in the middle: one message, the chord upgrade in embed.chain, as Python builds it', async () => {
    const fx = fixture<{ messages: Array<{ body_decoded: unknown[] }> }>('task_v2_chain_group', V57);
    const msgs = await publishedBy(async (app) => {
      const s = (name: string, ...args: unknown[]): Signature => app.signature(name, args);
      await chain(s('T.add', 1, 1), group(s('T.add', 10), s('T.add', 20)), s('T.tsum'), s('T.add', 100)).applyAsync();
    });
    expect(msgs).to.have.length(1);
    const dropQueues = (v: unknown): unknown => JSON.parse(JSON.stringify(v, (k, x) => (k === 'queue' ? undefined : x)));
    expect(dropQueues(shape(msgs[0]!.body))).to.deep.equal(dropQueues(shape(fx.messages[0]!.body_decoded)));
  });

  it('chunks and starmap: celery.starmap messages with {task, it}, chunks as a group', async () => {
    const fx = fixture<{ chunks_messages: Array<{ headers: Record<string, unknown>; body_decoded: unknown[] }>; starmap_messages: Array<{ body_decoded: unknown[] }> }>(
      'task_v2_chunks_starmap',
      V57,
    );
    const msgs = await publishedBy(async (app) => {
      const add = app.tasks.get('T.add')!;
      await (add as unknown as { chunks(it: unknown[][], n: number): Signature }).chunks([[1, 2], [3, 4], [5, 6]], 2).applyAsync();
      await (add as unknown as { starmap(it: unknown[][]): Signature }).starmap([[1, 2], [3, 4]]).applyAsync();
    });
    expect(msgs.map((m) => m.headers.task)).to.deep.equal(['celery.starmap', 'celery.starmap', 'celery.starmap']);
    expect(msgs.slice(0, 2).map((m) => m.headers.group_index)).to.deep.equal([0, 1]);
    expect(shape(msgs[0]!.body)).to.deep.equal(shape(fx.chunks_messages[0]!.body_decoded));
    expect(shape(msgs[2]!.body)).to.deep.equal(shape(fx.starmap_messages[0]!.body_decoded));
  });

  it('signatures read from Python messages serialize back as Python re-serializes them', () => {
    const fx = fixture<{ messages: Array<{ body_decoded: [unknown, unknown, { chain: Array<Record<string, any>> }] }> }>('task_v2_chain_group', V57);
    const [task, chordStep] = fx.messages[0]!.body_decoded[2].chain as [Record<string, any>, Record<string, any>];
    expect(JSON.parse(JSON.stringify(Signature.fromDict(task)))).to.deep.equal(task);
    // Celery's chord.from_dict keeps the header as the group's list of tasks (_maybe_group).
    const expected = structuredClone(chordStep);
    expected.kwargs.header = chordStep.kwargs.header.kwargs.tasks;
    expect(JSON.parse(JSON.stringify(Signature.fromDict(chordStep)))).to.deep.equal(expected);
  });

  it('GroupResult.save() stores the document Python stores', async () => {
    const fx = fixture<{ stored: { value: string } }>('redis_groupresult_save', V57);
    const app = new Celery('wire-save', { broker_url: 'memory://' });
    const g = await group(app.signature('x', [1]), app.signature('x', [2])).applyAsync();
    await g.save();
    const saved = await app.backend.restoreGroup!(g.id);
    expect(shape({ result: saved })).to.deep.equal(shape(JSON.parse(fx.stored.value)));
    await app.close();
  });

  const celeryRedis = join(REPO_ROOT, '.venv', 'lib', 'python3.11', 'site-packages', 'celery', 'backends', 'redis.py');
  (existsSync(celeryRedis) ? it : it.skip)('the chord join scripts are Celery 5.7\'s, character for character', () => {
    const source = readFileSync(celeryRedis, 'utf8');
    for (const [name, lua] of [['CHORD_PART_RETURN_LUA', CHORD_PART_RETURN_LUA], ['CHORD_CLEANUP_LUA', CHORD_CLEANUP_LUA], ['CHORD_CLAIM_EXTEND_LUA', CHORD_CLAIM_EXTEND_LUA]]) {
      const m = new RegExp(`${name} = """([\\s\\S]*?)"""`).exec(source);
      expect(m, `${name} in ${celeryRedis}`).to.not.equal(null);
      expect(lua).to.equal(m![1]);
    }
  });
});
