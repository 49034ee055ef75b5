/**
 * Which broker node to connect to next: kombu's failover over several broker
 * URLs (`broker_url: 'amqp://a//;amqp://b//'` or a list), with
 * `broker_failover_strategy` `round-robin` (the default) or `shuffle`.
 *
 * As kombu: the first URL is tried first; a failed attempt moves to the next
 * node at once, and the caller waits (backs off) only once every node of the
 * round has failed. Unlike kombu's `shuffle`, which draws a random node on
 * every failure (and may draw the node that just failed), a shuffled round
 * visits every node once in a random order: a dead node is not retried before
 * the others. After a connection that had succeeded is lost, the next attempt
 * goes to the next node too: the node that dropped us is the one most likely
 * to be going down.
 */
import { ImproperlyConfigured } from '../../errors.js';
import { maskUrl, splitUrlList } from '../../support/url.js';

/** `broker_failover_strategy`: Celery's names (null = round-robin). */
export type FailoverStrategy = 'round-robin' | 'shuffle';

export const FAILOVER_STRATEGIES: readonly FailoverStrategy[] = ['round-robin', 'shuffle'];

export class BrokerTargets {
  /** The URLs, in the configured order. */
  readonly urls: readonly string[];
  private order: number[];
  private position = 0;
  /** Failed attempts since the last success (or the start of the round). */
  private failuresInRound = 0;

  constructor(
    urls: string | readonly string[],
    readonly strategy: FailoverStrategy = 'round-robin',
    private readonly random: () => number = Math.random,
  ) {
    this.urls = splitUrlList(urls);
    if (this.urls.length === 0) throw new ImproperlyConfigured('broker_url is empty: give at least one amqp:// URL');
    if (!FAILOVER_STRATEGIES.includes(strategy)) {
      throw new ImproperlyConfigured(`broker_failover_strategy must be one of ${FAILOVER_STRATEGIES.join(', ')}, got ${JSON.stringify(strategy)}`);
    }
    // The first URL first, as kombu: a shuffled list only reorders the rounds after it.
    this.order = this.urls.map((_, i) => i);
  }

  /** More than one node to fail over to. */
  get failover(): boolean {
    return this.urls.length > 1;
  }

  /** The URL the next connection attempt uses. */
  get current(): string {
    return this.urls[this.order[this.position]!]!;
  }

  /** {@link current} with the password masked. */
  get currentDisplay(): string {
    // Asked once per publish (for the error message a lost confirm would carry): masked once per URL.
    const url = this.current;
    if (url !== this.displayedUrl) {
      this.displayedUrl = url;
      this.display = maskUrl(url);
    }
    return this.display;
  }

  private displayedUrl = '';
  private display = '';

  /**
   * A connection attempt to {@link current} failed: moves to the next node.
   * Returns true when every node has now failed once in this round (the caller
   * backs off before the next attempt), false when an untried node is next.
   */
  failed(): boolean {
    this.failuresInRound++;
    this.advance();
    if (this.failuresInRound < this.urls.length) return false;
    this.failuresInRound = 0;
    return true;
  }

  /** A connection to {@link current} opened: the next failure starts a fresh round. */
  succeeded(): void {
    this.failuresInRound = 0;
  }

  /** A connection that had opened was lost: the next attempt goes to the next node. */
  lost(): void {
    this.failuresInRound = 0;
    this.advance();
  }

  private advance(): void {
    if (this.urls.length === 1) return;
    this.position++;
    if (this.position < this.order.length) return;
    this.position = 0;
    if (this.strategy === 'shuffle') this.order = this.shuffled(this.order[this.order.length - 1]!);
  }

  /** A random order for the next round that does not start with `last` (the node just left). */
  private shuffled(last: number): number[] {
    const order = this.urls.map((_, i) => i);
    for (let i = order.length - 1; i > 0; i--) {
      const j = Math.floor(this.random() * (i + 1));
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
    if (order[0] === last) [order[0], order[order.length - 1]] = [order[order.length - 1]!, order[0]!];
    return order;
  }
}
