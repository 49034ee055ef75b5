/**
 * Celery's `LimitedSet`, the shape of the worker's revoked-ids set: at most
 * `maxlen` items (the oldest go first), and items older than `expires`
 * seconds are dropped when the set is purged. Purging happens when the set
 * reaches `maxlen`, and when asked (`purge()`: before sharing the set with
 * other workers and before saving it), as in Celery.
 *
 * Insertion order is time order here (a Map keeps it, and re-adding an item
 * moves it to the end), so the oldest item is always the first.
 */
export class LimitedSet {
  /** item -> insertion time (ms, monotonic). */
  private readonly items = new Map<string, number>();

  constructor(
    /** Most items kept (0 = unbounded). */
    readonly maxlen: number,
    /** Seconds an item lives once a purge runs (0 = forever). */
    readonly expires: number,
    private readonly now: () => number = () => performance.now(),
  ) {}

  get size(): number {
    return this.items.size;
  }

  has(item: string): boolean {
    return this.items.has(item);
  }

  /** Adds an item, or renews an existing one's insertion time. */
  add(item: string): void {
    this.items.delete(item);
    this.items.set(item, this.now());
    if (this.maxlen && this.items.size >= this.maxlen) this.purge();
  }

  /** Adds items in order (the first is the first to be purged), stamped now. */
  update(items: Iterable<string>): void {
    for (const item of items) if (typeof item === 'string') this.add(item);
  }

  discard(item: string): void {
    this.items.delete(item);
  }

  /** Drops items beyond `maxlen` (oldest first), then those older than `expires`. */
  purge(now = this.now()): void {
    if (this.maxlen) {
      for (const item of this.items.keys()) {
        if (this.items.size <= this.maxlen) break;
        this.items.delete(item);
      }
    }
    if (this.expires) {
      const oldest = now - this.expires * 1000;
      for (const [item, at] of this.items) {
        if (at > oldest) break;
        this.items.delete(item);
      }
    }
  }

  /** Items, oldest first. */
  [Symbol.iterator](): IterableIterator<string> {
    return this.items.keys();
  }

  toArray(): string[] {
    return [...this.items.keys()];
  }

  clear(): void {
    this.items.clear();
  }
}
