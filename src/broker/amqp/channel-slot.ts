/**
 * One lazily opened channel that is forgotten when it closes: the next
 * `get()` opens a fresh one. Concurrent callers share one opening.
 */
import type { Channel } from 'amqplib';

export class ChannelSlot<T extends Channel> {
  private channel: T | null = null;
  private opening: Promise<T> | null = null;

  constructor(private readonly open: () => Promise<T>) {}

  /** The open channel, if any (a synchronous fast path for hot code). */
  get current(): T | null {
    return this.channel;
  }

  get(): Promise<T> {
    if (this.channel) return Promise.resolve(this.channel);
    if (!this.opening) {
      this.opening = this.open()
        .then((ch) => {
          ch.on('error', () => undefined); // reported through 'close'; an unhandled 'error' would crash
          ch.on('close', () => {
            if (this.channel === ch) this.channel = null;
          });
          this.channel = ch;
          return ch;
        })
        .finally(() => {
          this.opening = null;
        });
    }
    return this.opening;
  }

  /** Forgets the channel (its connection is gone). */
  reset(): void {
    this.channel = null;
  }
}
