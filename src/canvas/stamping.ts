/**
 * Canvas stamping (Celery 5.3+): `sig.stamp(visitor, { appendStamps, ...stamps })`
 * adds custom "stamps" to every task of a canvas (its callbacks, errbacks,
 * chain steps, group members, chord header and body). Each stamped
 * signature gets the stamp values as options plus their names under the
 * option `stamped_headers`; a task message carries them in its headers
 * `stamped_headers` (the names) and `stamps` (name -> value), where a
 * worker shows them as `request.stamps` and `revoke_by_stamped_headers`
 * matches them.
 *
 * This is a line-by-line port of Celery 5.7's `canvas.py`
 * (`StampingVisitor`, `Signature.stamp/_stamp_headers/stamp_links`,
 * `_chain.stamp`, `group.stamp`, `_chord.stamp`, `_merge_dictionaries`),
 * including how Python shares lists between the header dicts it copies
 * shallowly: a visitor sees the same `stamped_headers` it would see in
 * Python (test/unit/canvas/stamping.test.ts compares with Celery's traces).
 */
import type { TaskRequest } from '../app/task.js';
import { Chain } from './chain.js';
import { Chord } from './chord.js';
import { Group } from './group.js';
import { isDict, maybeSignature, setStampImplementation, Signature } from './signature.js';

/** Stamps: stamp name -> value, plus (as Celery passes them around) `stamped_headers`, the names. */
export type Stamps = Record<string, unknown>;

/** What a visitor method returns: the stamps to add (nothing = none). */
export type VisitorStamps = Stamps | null | undefined | void;

/**
 * Celery's `StampingVisitor`: decides the stamps of each part of a canvas.
 * Each method gets the canvas part and the stamps given so far (a copy), and
 * returns the stamps to add. Only `onSignature` is required, as in Python.
 * Without `onChordHeaderStart`, a chord's header is made a group and
 * `onGroupStart` is called for it (and `onGroupEnd` for
 * `onChordHeaderEnd`), as Celery's default methods do.
 */
export interface StampingVisitor {
  /** Every task signature (after its callbacks and errbacks). */
  onSignature(sig: Signature, headers: Stamps): VisitorStamps;
  onGroupStart?(group: Group, headers: Stamps): VisitorStamps;
  onGroupEnd?(group: Group, headers: Stamps): void;
  onChainStart?(chain: Chain, headers: Stamps): VisitorStamps;
  onChainEnd?(chain: Chain, headers: Stamps): void;
  onChordHeaderStart?(chord: Chord, headers: Stamps): VisitorStamps;
  onChordHeaderEnd?(chord: Chord, headers: Stamps): void;
  onChordBody?(chord: Chord, headers: Stamps): VisitorStamps;
  /** Each callback (`link`), before it is stamped itself. */
  onCallback?(callback: Signature, headers: Stamps): VisitorStamps;
  /** Each errback (`link_error`), before it is stamped itself. */
  onErrback?(errback: Signature, headers: Stamps): VisitorStamps;
}

/**
 * The second argument of `sig.stamp()`: stamps to add (name -> value), and
 * `appendStamps` (Celery's `append_stamps`): when true, a stamp that already
 * has a value becomes a list of the values; when false (the default) one
 * value wins.
 */
export interface StampOptions {
  appendStamps?: boolean;
  [stamp: string]: unknown;
}

type Dict = Record<string, unknown>;

function isScalar(v: unknown): boolean {
  // Python's isinstance(v, (int, float, str)); bool is an int there.
  return typeof v === 'number' || typeof v === 'string' || typeof v === 'boolean';
}

/**
 * Celery's `_merge_dictionaries`: merges `d2` into `d1` in place. For a key
 * in both: dicts merge recursively; two lists are concatenated (in place,
 * into d1's list object, as Python's `extend`); otherwise, with
 * `aggregateDuplicates`, the values become a list of both, and without it
 * d1's value stays. Keys only in d2 are added.
 */
export function mergeDictionaries(d1: Dict, d2: Dict | null | undefined, aggregateDuplicates = true): void {
  if (!d2 || Object.keys(d2).length === 0) return;
  for (const key of Object.keys(d1)) {
    if (!Object.hasOwn(d2, key)) continue;
    const value = d1[key];
    if (isDict(value)) {
      if (isDict(d2[key])) mergeDictionaries(value, d2[key], aggregateDuplicates);
      continue;
    }
    if (isScalar(value)) d1[key] = aggregateDuplicates ? [value] : value;
    const mine = d1[key];
    const theirs = d2[key];
    if (Array.isArray(theirs) && Array.isArray(mine)) {
      mine.push(...(theirs as unknown[]));
    } else if (aggregateDuplicates) {
      const list = mine === null || mine === undefined ? [] : Array.isArray(mine) ? [...mine] : [mine];
      list.push(theirs);
      d1[key] = list;
    }
  }
  for (const [key, value] of Object.entries(d2)) if (!Object.hasOwn(d1, key)) d1[key] = value;
}

/** Python's `list(set(names))` (the order of a set is arbitrary there; first-seen order here). */
function unique(names: unknown): string[] {
  return [...new Set(Array.isArray(names) ? (names as string[]) : [])];
}

/**
 * Celery's `Signature._stamp_headers`: the stamps given, merged with the
 * visitor's (when there is a visitor) and, when `selfHeaders`, with the
 * stamps the signature already has.
 */
export function stampHeaders(sig: Signature, visitorHeaders: Dict | null, appendStamps: boolean, selfHeaders: boolean, given: Stamps): Stamps {
  const headers: Dict = { ...given };
  if (!Object.hasOwn(headers, 'stamped_headers')) headers.stamped_headers = Object.keys(headers);
  if (visitorHeaders !== null) {
    // As Python, the visitor's own dict gets its names added.
    if (!Object.hasOwn(visitorHeaders, 'stamped_headers')) visitorHeaders.stamped_headers = Object.keys(visitorHeaders);
    mergeDictionaries(headers, visitorHeaders, appendStamps);
    headers.stamped_headers = unique(headers.stamped_headers);
  }
  if (selfHeaders) {
    const names = new Set(Array.isArray(headers.stamped_headers) ? (headers.stamped_headers as string[]) : []);
    for (const n of ownStampedHeaders(sig)) names.add(n);
    headers.stamped_headers = [...names];
    // Only the options named in stamped_headers are stamps.
    const redacted: Dict = {};
    for (const [k, v] of Object.entries(sig.options)) if (names.has(k)) redacted[k] = v;
    mergeDictionaries(headers, redacted, appendStamps);
    headers.stamped_headers = unique(headers.stamped_headers);
  }
  return headers;
}

function ownStampedHeaders(sig: Signature): string[] {
  const v = sig.options.stamped_headers;
  return Array.isArray(v) ? (v as string[]) : [];
}

/** A visitor method's result as Python's `visitor.on_x(...) or {}`. */
function asStamps(v: VisitorStamps): Dict {
  return v && typeof v === 'object' ? (v as Dict) : {};
}

function listOf(v: unknown): unknown[] {
  if (v === null || v === undefined) return [];
  return Array.isArray(v) ? v : [v];
}

/** Celery's `Signature.stamp_links`: stamps each callback and errback (without the signature's own stamps). */
function stampLinks(sig: Signature, visitor: StampingVisitor | null, appendStamps: boolean, given: Stamps): void {
  const app = sig.maybeApp;
  for (const [key, hook] of [['link', 'onCallback'], ['link_error', 'onErrback']] as const) {
    // A deep copy per kind: the links of one kind accumulate each other's stamps, as in Python.
    let headers: Stamps = structuredClone(given);
    for (const item of listOf(sig.options[key])) {
      const link = maybeSignature(item, app);
      const visitorHeaders = visitor ? asStamps(visitor[hook]?.(link, { ...headers })) : null;
      headers = stampHeaders(sig, visitorHeaders, appendStamps, false, headers);
      stampCanvas(link, visitor, appendStamps, { ...headers });
    }
  }
}

/** Celery's `Signature.stamp`. */
function stampSignature(sig: Signature, visitor: StampingVisitor | null, appendStamps: boolean, given: Stamps): void {
  stampLinks(sig, visitor, appendStamps, { ...given });
  let headers: Stamps = { ...given };
  const visitorHeaders = visitor ? asStamps(visitor.onSignature(sig, { ...headers })) : null;
  headers = stampHeaders(sig, visitorHeaders, appendStamps, true, headers);
  // Python's sig.set(**headers): the stamps become options, not checked as option names.
  Object.assign(sig.options, headers);
}

/** Celery's `_chain.stamp`: the chain's own options are not stamped, its links and steps are. */
function stampChain(chain: Chain, visitor: StampingVisitor | null, appendStamps: boolean, given: Stamps): void {
  const visitorHeaders = visitor ? asStamps(visitor.onChainStart?.(chain, { ...given })) : null;
  const headers = stampHeaders(chain, visitorHeaders, appendStamps, true, given);
  // Python passes no append_stamps here (so: false).
  stampLinks(chain, visitor, false, { ...headers });
  for (const task of chain.tasks) stampCanvas(task, visitor, appendStamps, { ...headers });
  visitor?.onChainEnd?.(chain, { ...headers });
}

/** Celery's `group.stamp`. */
function stampGroup(group: Group, visitor: StampingVisitor | null, appendStamps: boolean, given: Stamps): void {
  const visitorHeaders = visitor ? asStamps(visitor.onGroupStart?.(group, { ...given })) : null;
  const headers = stampHeaders(group, visitorHeaders, appendStamps, true, given);
  stampLinks(group, visitor, appendStamps, { ...headers });
  const app = group.maybeApp;
  const tasks = group.tasks.map((t) => {
    const task = maybeSignature(t, app);
    stampCanvas(task, visitor, appendStamps, { ...headers });
    return task;
  });
  group.tasks.splice(0, group.tasks.length, ...tasks);
  visitor?.onGroupEnd?.(group, { ...headers });
}

/** `StampingVisitor.on_chord_header_start` with Celery's default: the header becomes a group, visited as one. */
function chordHeaderStart(visitor: StampingVisitor, chord: Chord, headers: Stamps): VisitorStamps {
  if (visitor.onChordHeaderStart) return visitor.onChordHeaderStart(chord, headers);
  if (!(chord.tasks instanceof Group)) chord.tasks = new Group(chord.tasks, {}, chord.maybeApp);
  return visitor.onGroupStart?.(chord.tasks, headers);
}

function chordHeaderEnd(visitor: StampingVisitor, chord: Chord, headers: Stamps): void {
  if (visitor.onChordHeaderEnd) visitor.onChordHeaderEnd(chord, headers);
  else if (chord.tasks instanceof Group) visitor.onGroupEnd?.(chord.tasks, headers);
}

/**
 * Celery's `_chord.stamp`: the header tasks get the chord's stamps; the body
 * gets them plus `onChordBody`'s, and only when there is a visitor (as in
 * Celery 5.7: `chord.stamp(None, ...)` leaves the body unstamped).
 */
function stampChord(chord: Chord, visitor: StampingVisitor | null, appendStamps: boolean, given: Stamps): void {
  // The header's tasks as they are before the visitor may turn the header into a group (same objects).
  const tasks = chord.headerTasks;
  const visitorHeaders = visitor ? asStamps(chordHeaderStart(visitor, chord, { ...given })) : null;
  let headers = stampHeaders(chord, visitorHeaders, appendStamps, true, given);
  stampLinks(chord, visitor, appendStamps, { ...headers });
  const stamps = { ...headers };
  for (const task of tasks) stampCanvas(task, visitor, appendStamps, { ...stamps });
  if (visitor) chordHeaderEnd(visitor, chord, { ...headers });
  const body = chord.body;
  if (visitor && body) {
    const bodyHeaders = asStamps(visitor.onChordBody?.(chord, { ...headers }));
    headers = stampHeaders(chord, bodyHeaders, appendStamps, true, headers);
    stampCanvas(body, visitor, appendStamps, { ...headers });
  }
}

/** Stamps any canvas part with the method of its kind. */
function stampCanvas(sig: Signature, visitor: StampingVisitor | null, appendStamps: boolean, headers: Stamps): void {
  if (sig instanceof Chain) stampChain(sig, visitor, appendStamps, headers);
  else if (sig instanceof Chord) stampChord(sig, visitor, appendStamps, headers);
  else if (sig instanceof Group) stampGroup(sig, visitor, appendStamps, headers);
  else stampSignature(sig, visitor, appendStamps, headers);
}

setStampImplementation((sig, visitor, options) => {
  const { appendStamps, ...stamps } = options;
  stampCanvas(sig, visitor ?? null, appendStamps === true, stamps);
});

/**
 * `request.stampedHeaders` and `request.stamps` of a received message, as
 * Celery's `Request.stamped_headers`/`stamps`: the names, and each name's
 * value from the `stamps` header (null when missing).
 */
export function requestStamps(headers: Record<string, unknown>): Pick<TaskRequest, 'stampedHeaders' | 'stamps'> {
  const names = Array.isArray(headers.stamped_headers) ? (headers.stamped_headers as string[]) : [];
  const all = isDict(headers.stamps) ? headers.stamps : {};
  const stamps: Stamps = {};
  for (const name of names) stamps[name] = all[name] ?? null;
  return { stampedHeaders: names, stamps };
}
