/**
 * Signature options: what `.set({...})` accepts, and how a signature's
 * options become a task message.
 *
 * A signature keeps its options under Celery's own names (`task_id`,
 * `link_error`, `group_index`...), because they travel inside messages and a
 * Python worker reads them. TypeScript code may write them in camelCase
 * (`taskId`, `linkError`); both spellings are accepted. Any other name is an
 * error that suggests the closest known one, instead of an option silently
 * ignored.
 */
import type { ApplyOptions } from '../app/task.js';
import { ImproperlyConfigured } from '../errors.js';
import type { SignatureDict } from '../protocol/message.js';
import { didYouMean } from '../support/suggest.js';

/** Options as stored on a signature, with Celery's names. */
export type CeleryOptions = Record<string, unknown>;

/** camelCase name -> Celery's name, for every option a signature may carry. */
const CAMEL_TO_CELERY: Readonly<Record<string, string>> = {
  taskId: 'task_id',
  countdown: 'countdown',
  eta: 'eta',
  expires: 'expires',
  queue: 'queue',
  routingKey: 'routing_key',
  exchange: 'exchange',
  exchangeType: 'exchange_type',
  priority: 'priority',
  shadow: 'shadow',
  ignoreResult: 'ignore_result',
  timeLimit: 'time_limit',
  softTimeLimit: 'soft_time_limit',
  headers: 'headers',
  link: 'link',
  linkError: 'link_error',
  parentId: 'parent_id',
  rootId: 'root_id',
  groupId: 'group_id',
  groupIndex: 'group_index',
  chord: 'chord',
  chain: 'chain',
  replyTo: 'reply_to',
  replacedTaskNesting: 'replaced_task_nesting',
  addToParent: 'add_to_parent',
  serializer: 'serializer',
  compression: 'compression',
  retry: 'retry',
  retryPolicy: 'retry_policy',
  routeName: 'route_name',
  stampedHeaders: 'stamped_headers',
};

const CELERY_NAMES = new Set(Object.values(CAMEL_TO_CELERY));

/** The options `.set()` takes (camelCase or Celery's snake_case names), plus `immutable`. */
export interface SignatureOptions extends Omit<ApplyOptions, 'link' | 'linkError' | 'chord' | 'chain'> {
  immutable?: boolean;
  link?: unknown;
  linkError?: unknown;
  chord?: unknown;
  chain?: unknown[];
  exchangeType?: string;
  [celeryName: string]: unknown;
}

/**
 * Converts `.set()`-style options to Celery's names. `immutable` is returned
 * apart (it is a signature field, not an option). Throws
 * {@link ImproperlyConfigured} for an unknown name, with a suggestion.
 */
export function toCeleryOptions(input: Record<string, unknown>): { options: CeleryOptions; immutable?: boolean } {
  const options: CeleryOptions = {};
  let immutable: boolean | undefined;
  for (const [key, value] of Object.entries(input)) {
    if (value === undefined) continue;
    if (key === 'immutable') {
      immutable = Boolean(value);
      continue;
    }
    const name = CAMEL_TO_CELERY[key] ?? (CELERY_NAMES.has(key) ? key : undefined);
    if (name === undefined) {
      const known = [...Object.keys(CAMEL_TO_CELERY), ...CELERY_NAMES];
      throw new ImproperlyConfigured(
        `Unknown signature option ${JSON.stringify(key)}${didYouMean(key, known, { normalize: (n) => n.toLowerCase() })}`,
      );
    }
    options[name] = value;
  }
  return immutable === undefined ? { options } : { options, immutable };
}

/** Something that serializes to a signature dict (a Signature, or a dict read from a message). */
export type SignatureLike = SignatureDict | { toJSON(): SignatureDict };

function list(v: unknown): SignatureLike[] | undefined {
  if (v === undefined || v === null) return undefined;
  return (Array.isArray(v) ? v : [v]) as SignatureLike[];
}

/**
 * The stamp headers of a task message's `stamped_headers`/`stamps` (Celery's
 * `as_task_v2`): `{ stamped_headers, stamps }`, or null when the options
 * name no stamps. A stamp named without a value is sent as null.
 */
export function stampMessageHeaders(options: Record<string, unknown>): { stamped_headers: string[]; stamps: Record<string, unknown> } | null {
  const names = options.stamped_headers;
  if (!Array.isArray(names)) return null;
  const stamps: Record<string, unknown> = {};
  for (const name of names as string[]) stamps[name] = options[name] ?? null;
  return { stamped_headers: names as string[], stamps };
}

/**
 * The `applyAsync` options a signature's Celery options stand for. Options
 * that only steer kombu's publishing (serializer, retry...) have no effect
 * here, as they are only hints in Python too.
 */
export function toApplyOptions(o: CeleryOptions): ApplyOptions {
  const out: ApplyOptions = {};
  if (typeof o.task_id === 'string') out.taskId = o.task_id;
  if (typeof o.queue === 'string') out.queue = o.queue;
  else if (o.queue && typeof (o.queue as { name?: unknown }).name === 'string') out.queue = (o.queue as { name: string }).name;
  if (typeof o.routing_key === 'string') out.routingKey = o.routing_key;
  if (typeof o.exchange === 'string') out.exchange = o.exchange;
  else if (o.exchange && typeof (o.exchange as { name?: unknown }).name === 'string') out.exchange = (o.exchange as { name: string }).name;
  if (typeof o.priority === 'number') out.priority = o.priority;
  if (typeof o.countdown === 'number') out.countdown = o.countdown;
  if (typeof o.eta === 'string' || typeof o.eta === 'number' || o.eta instanceof Date) out.eta = o.eta;
  if (typeof o.expires === 'number' || typeof o.expires === 'string' || o.expires instanceof Date) out.expires = o.expires;
  if (typeof o.shadow === 'string') out.shadow = o.shadow;
  if (typeof o.ignore_result === 'boolean') out.ignoreResult = o.ignore_result;
  if (typeof o.time_limit === 'number') out.timeLimit = o.time_limit;
  if (typeof o.soft_time_limit === 'number') out.softTimeLimit = o.soft_time_limit;
  if (o.headers && typeof o.headers === 'object') out.headers = o.headers as Record<string, unknown>;
  // Stamps travel as the headers stamped_headers/stamps (Celery's as_task_v2); custom `headers` are merged over them, as kombu does.
  const stamps = stampMessageHeaders(o);
  if (stamps) out.headers = { ...stamps, ...out.headers };
  if (typeof o.parent_id === 'string') out.parentId = o.parent_id;
  if (typeof o.root_id === 'string') out.rootId = o.root_id;
  if (typeof o.group_id === 'string') out.groupId = o.group_id;
  if (typeof o.group_index === 'number') out.groupIndex = o.group_index;
  if (typeof o.reply_to === 'string' && o.reply_to) out.replyTo = o.reply_to;
  if (typeof o.replaced_task_nesting === 'number') out.replacedTaskNesting = o.replaced_task_nesting;
  if (o.add_to_parent === false) out.addToParent = false;
  if (o.chord && typeof o.chord === 'object') out.chord = o.chord as SignatureLike;
  if (Array.isArray(o.chain)) out.chain = o.chain as SignatureLike[];
  const link = list(o.link);
  const linkError = list(o.link_error);
  if (link) out.link = link;
  if (linkError) out.linkError = linkError;
  return out;
}
