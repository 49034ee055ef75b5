/**
 * A TCP proxy for fault tests: clients connect to `127.0.0.1:<port>` and are
 * piped to the target. {@link TcpProxy.blackhole} makes every connection
 * open at that moment go silent in both directions *without closing it*: no
 * FIN, no RST, the sockets stay open and bytes are swallowed. That is what a
 * dead peer, a pulled cable or a NAT table flush looks like; only heartbeats
 * (or TCP keepalive, much later) can detect it. Connections opened afterwards
 * are piped normally, so a client that gives up on the dead connection can
 * reconnect at once.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';

interface Pair {
  client: Socket;
  upstream: Socket;
  dead: boolean;
}

export class TcpProxy {
  private server: Server | null = null;
  private readonly pairs = new Set<Pair>();
  /** Connections accepted so far. */
  accepted = 0;
  port = 0;

  constructor(
    private readonly targetPort: number,
    private readonly targetHost = '127.0.0.1',
  ) {}

  async start(): Promise<void> {
    this.server = createServer((client) => this.onClient(client));
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as { port: number }).port;
  }

  private onClient(client: Socket): void {
    this.accepted++;
    const upstream = connect({ host: this.targetHost, port: this.targetPort });
    const pair: Pair = { client, upstream, dead: false };
    this.pairs.add(pair);
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    client.on('data', (d: Buffer) => {
      if (!pair.dead) upstream.write(d);
    });
    upstream.on('data', (d: Buffer) => {
      if (!pair.dead) client.write(d);
    });
    // While alive, a close on one side closes the other (a clean close passes through).
    const closeBoth = (): void => {
      if (pair.dead) return;
      client.destroy();
      upstream.destroy();
      this.pairs.delete(pair);
    };
    client.on('close', closeBoth);
    upstream.on('close', closeBoth);
    client.on('error', () => undefined);
    upstream.on('error', () => undefined);
  }

  /** Live (piped) connections. */
  get live(): number {
    let n = 0;
    for (const p of this.pairs) if (!p.dead) n++;
    return n;
  }

  /**
   * Silences every current connection without closing it: from now on both
   * ends see nothing, and their writes vanish. Returns how many were cut.
   */
  blackhole(): number {
    let n = 0;
    for (const p of this.pairs) {
      if (p.dead) continue;
      p.dead = true;
      n++;
    }
    return n;
  }

  /** Closes the listener and destroys every socket, silenced ones included. */
  async close(): Promise<void> {
    for (const p of this.pairs) {
      p.dead = true;
      p.client.destroy();
      p.upstream.destroy();
    }
    this.pairs.clear();
    if (this.server) await new Promise<void>((resolve) => this.server!.close(() => resolve()));
    this.server = null;
  }
}
