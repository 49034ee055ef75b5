/**
 * Lamport's logical clock, as kombu's `LamportClock`: Celery stamps every
 * event and remote-control message with it (the `clock` field/header) so
 * monitors can order messages from different hosts.
 */
export class LamportClock {
  constructor(
    /** The current value. */
    public value = 0,
  ) {}

  /** Sending: advance and return the new value. */
  forward(): number {
    return ++this.value;
  }

  /** Receiving a message stamped `other`: jump past it. Returns the new value. */
  adjust(other: number): number {
    this.value = Math.max(this.value, Number.isFinite(other) ? other : 0) + 1;
    return this.value;
  }

  toString(): string {
    return String(this.value);
  }
}
