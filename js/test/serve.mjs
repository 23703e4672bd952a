// A small HTTP server for browser tests and the demo: serves js/ as static files and, when a
// `relay` function is given, answers /v1/stream like a walcast relay (or proxies to a real one).
import http from 'node:http';
import { readFile } from 'node:fs/promises';
import { extname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';

const TYPES = { '.html': 'text/html', '.js': 'text/javascript', '.mjs': 'text/javascript', '.wasm': 'application/wasm', '.json': 'application/json', '.css': 'text/css' };
export const jsRoot = fileURLToPath(new URL('..', import.meta.url));

/** relay(req, res, url) handles /v1/*; returns { url, close }. Listens on 127.0.0.1 only. */
export async function serve({ relay, port = 0 } = {}) {
  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url, 'http://127.0.0.1');
    if (url.pathname.startsWith('/v1/') && relay) return relay(req, res, url);
    const path = normalize(join(jsRoot, decodeURIComponent(url.pathname === '/' ? '/demo/index.html' : url.pathname)));
    if (!path.startsWith(jsRoot)) {
      res.writeHead(403).end();
      return;
    }
    try {
      const body = await readFile(path);
      res.writeHead(200, { 'content-type': TYPES[extname(path)] ?? 'application/octet-stream' }).end(body);
    } catch {
      res.writeHead(404).end('not found');
    }
  });
  await new Promise((r) => server.listen(port, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    close: () => new Promise((r) => { server.closeAllConnections(); server.close(r); }),
  };
}

/** Forwards /v1/* to a real relay at `target` (e.g. http://127.0.0.1:7070), streaming. */
export function proxyTo(target) {
  return (req, res, url) => {
    const up = http.get(new URL(url.pathname + url.search, target), (r) => {
      res.writeHead(r.statusCode, r.headers);
      r.pipe(res);
    });
    up.on('error', () => res.destroy());
    req.on('close', () => up.destroy());
  };
}

export const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-quic'];

/** Launches Debian's chromium through playwright-core with a fresh profile; null if absent. */
export async function launchChromium() {
  const { existsSync, mkdtempSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const exe = process.env.CHROMIUM ?? '/usr/bin/chromium';
  if (!existsSync(exe)) return null;
  const { chromium } = await import('playwright-core');
  const userDataDir = mkdtempSync(join(tmpdir(), 'walcast-chromium-'));
  const context = await chromium.launchPersistentContext(userDataDir, { executablePath: exe, args: CHROMIUM_ARGS, headless: true });
  // The profile is throwaway: remove it with the browser, or every run leaves one in /tmp.
  const { rmSync } = await import('node:fs');
  const close = context.close.bind(context);
  context.close = async (...args) => {
    await close(...args);
    rmSync(userDataDir, { recursive: true, force: true });
  };
  return context;
}
