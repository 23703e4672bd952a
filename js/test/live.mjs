// Live harness: a throwaway PostgreSQL 15 cluster (like the Rust walcast-testkit) and a
// `walcast relay` from target/debug, both on 127.0.0.1 with free ports, torn down by `stop()`.
import { spawn, execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, chmodSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = fileURLToPath(new URL('../../', import.meta.url));
export const relayBin = process.env.WALCAST_BIN ?? join(root, 'target/debug/walcast');
const PG_BIN = '/usr/lib/postgresql/15/bin';

export function liveAvailable() {
  if (!existsSync(relayBin)) return `no relay binary at ${relayBin} (cargo build -p walcast-relay)`;
  if (!existsSync(join(PG_BIN, 'initdb'))) return 'no PostgreSQL 15 server binaries';
  return null;
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

const asRoot = process.getuid?.() === 0;
function pgExec(tool, args) {
  const bin = join(PG_BIN, tool);
  return asRoot
    ? execFileSync('runuser', ['-u', 'postgres', '--', bin, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
    : execFileSync(bin, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

export async function startPostgres() {
  const dir = mkdtempSync(join(tmpdir(), 'walcast-js-pg-'));
  chmodSync(dir, 0o777); // initdb runs as the postgres user when we are root
  const data = join(dir, 'data');
  const port = await freePort();
  pgExec('initdb', ['-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-sync']);
  const opts = `-c port=${port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=${dir} -c wal_level=logical -c max_replication_slots=8 -c max_wal_senders=8 -c fsync=off -c TimeZone=UTC`;
  pgExec('pg_ctl', ['-D', data, '-o', opts, '-l', join(dir, 'server.log'), '-w', 'start']);
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  return {
    url,
    port,
    psql(sql) {
      return execFileSync('psql', [url, '-v', 'ON_ERROR_STOP=1', '-qAtX', '-c', sql], { encoding: 'utf8' });
    },
    stop() {
      try {
        pgExec('pg_ctl', ['-D', data, '-m', 'immediate', 'stop']);
      } catch {
        /* already stopped */
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export async function startRelay(pg, { tables, dataDir, httpPort: port } = {}) {
  const dir = dataDir ?? mkdtempSync(join(tmpdir(), 'walcast-js-relay-'));
  const httpPort = port ?? (await freePort());
  const quicPort = await freePort();
  const args = ['relay', '--postgres', pg.url, '--slot', 'walcast_js', '--publication', 'walcast_js', '--data-dir', dir, '--http', `127.0.0.1:${httpPort}`, '--quic', `127.0.0.1:${quicPort}`];
  if (tables) args.push('--tables', tables.join(','));
  const child = spawn(relayBin, args, { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? 'warn' } });
  let log = '';
  child.stderr.on('data', (d) => {
    log = (log + d).slice(-20000);
  });
  const url = `http://127.0.0.1:${httpPort}`;
  const deadline = Date.now() + 60000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`relay exited ${child.exitCode}:\n${log}`);
    try {
      const r = await fetch(`${url}/readyz`);
      if (r.ok) break;
    } catch {
      /* not listening yet */
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`relay not ready after 60 s:\n${log}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return {
    url,
    httpPort,
    dataDir: dir,
    log: () => log,
    async stop(signal = 'SIGTERM') {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill(signal);
      const t = setTimeout(() => child.kill('SIGKILL'), 10000);
      await exited;
      clearTimeout(t);
    },
  };
}
