/**
 * `bash scripts/services.sh cluster start|stop|status` (or `npx tsx scripts/cluster.ts ...`):
 * a 3-node RabbitMQ cluster on this machine for trying failover by hand (test/helpers/rabbit-cluster.ts):
 * cluster1..3@localhost on 127.0.0.1:5691-5693, joined with rabbitmqctl join_cluster.
 *
 *   start    wipes and starts the three nodes, joins them, prints the failover broker_url
 *   stop     shuts down every node of it that runs
 *   status   rabbitmqctl cluster_status through the first node that answers
 *
 * The password is random per `start` and printed; it is also kept (root-only) in
 * /var/lib/rabbitmq/ts-celery-cluster/password.
 */
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { CLUSTER_DIR, RabbitCluster } from '../test/helpers/rabbit-cluster.js';

const PASSWORD_FILE = `${CLUSTER_DIR}/password`;

async function main(command: string | undefined): Promise<number> {
  const saved = existsSync(PASSWORD_FILE) ? readFileSync(PASSWORD_FILE, 'utf8').trim() : undefined;
  switch (command) {
    case 'start': {
      const cluster = new RabbitCluster();
      await cluster.start();
      writeFileSync(PASSWORD_FILE, `${cluster.password}\n`);
      chmodSync(PASSWORD_FILE, 0o600);
      console.log(`[cluster] running: ${(await cluster.runningNodes()).join(', ')}`);
      console.log(`[cluster] broker_url: ${cluster.failoverUrl()}`);
      return 0;
    }
    case 'stop': {
      const cluster = new RabbitCluster(saved);
      // Started by another process: shut each node down through rabbitmqctl.
      await Promise.all(cluster.nodes.map((n) => n.ctl(['shutdown'], 60_000).then(
        () => console.log(`[cluster] stopped ${n.nodename}`),
        () => console.log(`[cluster] ${n.nodename}: not running`),
      )));
      return 0;
    }
    case 'status': {
      const cluster = new RabbitCluster(saved);
      for (const n of cluster.nodes) {
        try {
          console.log(await n.ctl(['cluster_status']));
          return 0;
        } catch {
          /* the next node */
        }
      }
      console.log('[cluster] no node is running');
      return 1;
    }
    default:
      console.error('usage: scripts/cluster.ts start|stop|status');
      return 2;
  }
}

main(process.argv[2]).then((code) => process.exit(code), (err: unknown) => {
  console.error(`[cluster] ${(err as Error).message}`);
  process.exit(1);
});
