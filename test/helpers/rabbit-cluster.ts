/**
 * A 3-node RabbitMQ cluster on this machine, next to the shared broker and
 * the fault tests' node: `cluster1@localhost` .. `cluster3@localhost` on
 * 127.0.0.1:5691-5693 (AMQP) with distribution ports 25691-25693, data, logs
 * and config under /var/lib/rabbitmq/ts-celery-cluster/<node>/ (where the
 * rabbitmq user can reach them wherever the checkout is). Nodes 2 and 3 join
 * node 1 with `rabbitmqctl stop_app; join_cluster cluster1@localhost;
 * start_app`, as an operator would; every node runs through the Debian
 * wrapper, so all share the rabbitmq user's Erlang cookie.
 *
 * Login: user `cluster` with a random password (every node's `default_user`,
 * node 1's is the one the cluster keeps), vhost `/`.
 *
 * Used by test/faults/cluster-failover.test.ts (which starts it once and stops
 * it in its `after` hook) and by `scripts/services.sh cluster start|stop`.
 */
import { randomBytes } from 'node:crypto';
import { RabbitNode } from './rabbit-node.js';

export const CLUSTER_DIR = '/var/lib/rabbitmq/ts-celery-cluster';
/** Node names, AMQP and distribution ports: distinct from the shared node (5672) and the faults node (5681/5682/25681). */
export const CLUSTER_NODES = [
  { nodename: 'cluster1@localhost', port: 5691, distPort: 25691 },
  { nodename: 'cluster2@localhost', port: 5692, distPort: 25692 },
  { nodename: 'cluster3@localhost', port: 5693, distPort: 25693 },
] as const;

export class RabbitCluster {
  readonly user = 'cluster';
  readonly password: string;
  readonly nodes: RabbitNode[];

  constructor(password = `Cluster-Secret-${randomBytes(6).toString('hex')}`) {
    this.password = password;
    this.nodes = CLUSTER_NODES.map((n) => new RabbitNode({
      ...n,
      dir: `${CLUSTER_DIR}/${n.nodename.split('@')[0]}`,
      tlsPort: null,
      user: this.user,
      password,
      channelTickMs: null,
    }));
  }

  /** `amqp://cluster:<password>@127.0.0.1:<port>/` of each node, in node order. */
  get urls(): string[] {
    return this.nodes.map((n) => n.url);
  }

  /** Every node's URL, starting with node `first` (0-based): kombu's failover list. */
  failoverUrl(first = 0): string {
    const urls = this.urls;
    return [...urls.slice(first), ...urls.slice(0, first)].join(';');
  }

  /**
   * Starts the three nodes afresh (data wiped), booting them side by side,
   * then joins 2 and 3 to node 1 one after the other. About 25 s on two cores.
   */
  async start(): Promise<void> {
    const [first, ...others] = this.nodes as [RabbitNode, ...RabbitNode[]];
    await Promise.all(this.nodes.map((n) => n.start({ fresh: true })));
    for (const node of others) {
      await node.ctl(['stop_app']);
      await node.ctl(['join_cluster', first.nodename]);
      await node.ctl(['start_app']);
      await node.ctl(['await_startup', '--timeout', '60']);
    }
    const running = await this.runningNodes();
    if (running.length !== this.nodes.length) throw new Error(`cluster formed with ${running.join(', ')} only`);
  }

  /** Node names the cluster reports as running (asked through node 1, or any running node). */
  async runningNodes(): Promise<string[]> {
    const asker = this.nodes.find((n) => n.running) ?? this.nodes[0]!;
    const out = await asker.ctl(['cluster_status', '--formatter', 'json']);
    return (JSON.parse(out) as { running_nodes: string[] }).running_nodes;
  }

  /** Stops every node that runs (in parallel). */
  async stop(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.stop()));
  }

  /** SIGKILL every node (synchronous; for process exit). */
  killNow(): void {
    for (const n of this.nodes) if (n.running) n.killNow();
  }
}
