/**
 * A throwaway PKI for TLS tests, made with the `openssl` CLI: a CA, a server
 * certificate for `localhost` / `127.0.0.1` signed by it, and a client
 * certificate signed by it. EC P-256 keys (fast to make). Files are
 * world-readable because the RabbitMQ node runs as the `rabbitmq` user and
 * must read the server key; they are test keys that protect nothing.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync, chmodSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

export interface TestPki {
  dir: string;
  caCert: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  /** A second, unrelated CA: a client trusting only this one must refuse the server. */
  otherCaCert: string;
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

function selfSignedCa(dir: string, name: string, cn: string): void {
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', `${name}.key`, '-out', `${name}.pem`, '-days', '2', '-subj', `/CN=${cn}`], dir);
}

function signed(dir: string, name: string, cn: string, ext: string): void {
  openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`], dir);
  writeFileSync(join(dir, `${name}.ext`), ext);
  openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial',
    '-out', `${name}.pem`, '-days', '2', '-extfile', `${name}.ext`], dir);
}

/** Creates (or re-creates) the PKI under `dir`. ~0.2 s. */
export function makeTestPki(dir: string): TestPki {
  if (existsSync(dir)) rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  selfSignedCa(dir, 'ca', 'ts-celery fault-test CA');
  selfSignedCa(dir, 'other-ca', 'some other CA');
  signed(dir, 'server', 'localhost',
    'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\nkeyUsage=digitalSignature,keyEncipherment\n');
  signed(dir, 'client', 'ts-celery-client',
    'extendedKeyUsage=clientAuth\nkeyUsage=digitalSignature,keyEncipherment\n');
  chmodSync(dir, 0o755);
  for (const f of readdirSync(dir)) chmodSync(join(dir, f), 0o644);
  return {
    dir,
    caCert: join(dir, 'ca.pem'),
    serverCert: join(dir, 'server.pem'),
    serverKey: join(dir, 'server.key'),
    clientCert: join(dir, 'client.pem'),
    clientKey: join(dir, 'client.key'),
    otherCaCert: join(dir, 'other-ca.pem'),
  };
}
