/**
 * Where kombu's Redis transport broadcasts fanout exchanges, as pure
 * functions. A fanout exchange (remote control's `celery.pidbox`, and
 * `celeryev`, which Celery declares as fanout on Redis) has no lists: a
 * message is PUBLISHed on a topic and every queue bound to the exchange
 * PSUBSCRIBEs to it (kombu's `_get_publish_topic` / `_get_subscribe_topic`):
 *
 *   publish:   /<db>.<exchange>               (no routing key, or fanout_patterns off)
 *              /<db>.<exchange>/<routing key>  (fanout_patterns on, the default)
 *   subscribe: the same with the binding key, `#` replaced by `*` (a glob)
 *
 * Redis pub/sub channels are not per database, hence the `/<db>.` prefix
 * (`fanout_prefix`); `global_keyprefix` goes in front of the whole topic.
 * Checked against test/fixtures/celery-5.7/redis_broker_{pidbox_fanout,events}.json.
 */
import type { RedisTransportOptions } from './options.js';

/** kombu's default `keyprefix_fanout`, formatted with the database number. */
export const DEFAULT_FANOUT_PREFIX = '/{db}.';

/** How topics are named: from `fanout_prefix`, `fanout_patterns`, `global_keyprefix` and the URL's db. */
export interface TopicSpace {
  /** `global_keyprefix`, in front of every topic (kombu's prefixed pub/sub client). */
  keyPrefix: string;
  /** The formatted fanout prefix (`/10.`), or '' with `fanout_prefix` off. */
  fanoutPrefix: string;
  /** `fanout_patterns`: the routing key is part of the topic. */
  patterns: boolean;
  /**
   * sentinel:// with `sentinel_fanout_compat`: kombu < 5.4 did not format
   * the prefix on Sentinel and used the literal `/{db}.`; messages then also
   * go to, and are read from, that topic. Null otherwise.
   */
  legacyPrefix: string | null;
}

/**
 * kombu's `keyprefix_fanout`: true (the default) = `/{db}.`, a string = that
 * prefix, false = none (kombu 3.x); `{db}` becomes the database number.
 */
export function fanoutPrefix(option: boolean | string, db: number): string {
  if (option === false || option === '') return '';
  const raw = option === true ? DEFAULT_FANOUT_PREFIX : option;
  return raw.replace(/\{db\}/g, String(db));
}

/** The topic layout of a broker: its transport options, whether it is sentinel://, and its db. */
export function topicSpace(
  options: Pick<RedisTransportOptions, 'global_keyprefix' | 'fanout_prefix' | 'fanout_patterns' | 'sentinel_fanout_compat'>,
  sentinel: boolean,
  db: number,
): TopicSpace {
  const raw = options.fanout_prefix;
  return {
    keyPrefix: options.global_keyprefix,
    fanoutPrefix: fanoutPrefix(raw, db),
    patterns: options.fanout_patterns,
    // kombu < 5.4 on Sentinel left '{db}' in the prefix unformatted.
    legacyPrefix: sentinel && options.sentinel_fanout_compat && raw !== false && raw !== '' ? (raw === true ? DEFAULT_FANOUT_PREFIX : raw) : null,
  };
}

/** kombu's `_get_publish_topic` for one prefix. */
function topic(prefix: string, exchange: string, routingKey: string, patterns: boolean): string {
  return routingKey && patterns ? `${prefix}${exchange}/${routingKey}` : `${prefix}${exchange}`;
}

/**
 * The channels a message to (exchange, routing key) is PUBLISHed on, with
 * `global_keyprefix`: one, or two with the Sentinel compatibility topic.
 */
export function publishTopics(ts: TopicSpace, exchange: string, routingKey: string): string[] {
  const out = [ts.keyPrefix + topic(ts.fanoutPrefix, exchange, routingKey, ts.patterns)];
  if (ts.legacyPrefix !== null && ts.legacyPrefix !== ts.fanoutPrefix) out.push(ts.keyPrefix + topic(ts.legacyPrefix, exchange, routingKey, ts.patterns));
  return out;
}

/**
 * The patterns a queue bound to (exchange, binding key) PSUBSCRIBEs to:
 * kombu's `_queue_bind` turns `#` into `*` (any characters, in Redis' glob),
 * so `#` = every routing key and `worker.#` = `worker.*`.
 */
export function subscribePatterns(ts: TopicSpace, exchange: string, bindingKey: string): string[] {
  return publishTopics(ts, exchange, bindingKey.replace(/#/g, '*'));
}
