// connect(): a live, resuming subscription to a walcast relay.
//
// Delivery contract: a change is yielded only after its transaction's commit arrived, and a
// transaction is yielded at most once per subscription: the subscription remembers the commit end
// LSN of the last transaction it delivered ("position"), resumes from it after any disconnect
// (`from=position` means "I applied every transaction whose commit end_lsn <= position"), and
// drops any transaction whose commit end LSN is <= position. Persist `change.commit.endLsn` with
// your writes and pass it as `from` to continue after a restart: no gap, no duplicate.

import { Decoder, ensureInitialized } from './core.js';
import { BadRequestError, DecodeError, ResyncRequiredError, WalcastError } from './errors.js';
import { bigIntToLsn, lsnToBigInt } from './lsn.js';

/**
 * The default transport: one HTTP GET per connection, body streamed with fetch.
 * A Transport is `{ open({ url, from, tables, bootstrap, signal, compression, frameVersion }) -> Promise<AsyncIterable<Uint8Array>> }`;
 * a WebTransport one only has to implement the same method.
 */
export function fetchTransport({ fetch: fetchImpl = globalThis.fetch, headers } = {}) {
  return {
    async open({ url, from, tables, bootstrap, signal, compression, frameVersion }) {
      const u = new URL(url, globalThis.location?.href);
      if (u.pathname === '/' || u.pathname === '') u.pathname = '/v1/stream';
      if (from) u.searchParams.set('from', from);
      else if (bootstrap) u.searchParams.set('bootstrap', 'true');
      if (tables && tables.length) u.searchParams.set('tables', tables.join(','));
      // 'auto' leaves it to Accept-Encoding, which the runtime's fetch sets (browsers list zstd
      // and decode it natively); 'zstd' / 'none' ask explicitly (docs/frames.md, "Compression").
      if (compression && compression !== 'auto') u.searchParams.set('compression', compression);
      // The decoder reads every frame version; 1 is the relay's default, so it goes unsaid.
      if (frameVersion && frameVersion !== 1) u.searchParams.set('v', String(frameVersion));
      const res = await fetchImpl(u.href, {
        headers: { accept: 'application/x-walcast-frames', ...headers },
        signal,
        cache: 'no-store',
      });
      if (res.status === 410) {
        throw new ResyncRequiredError(await bodyText(res), from);
      }
      if (res.status === 400 || res.status === 404 || res.status === 422) {
        throw new BadRequestError(`relay rejected the request (${res.status}): ${await bodyText(res)}`, res.status);
      }
      if (!res.ok || !res.body) {
        const e = new WalcastError(`relay answered ${res.status}`);
        e.retryable = true;
        throw e;
      }
      return readerIterable(res.body);
    },
  };
}

// The relay's error bodies are JSON {"code","message"}; anything else is shown as text.
async function bodyText(res) {
  let text = '';
  try {
    text = (await res.text()).slice(0, 2000);
    const j = JSON.parse(text);
    if (j && typeof j.message === 'string') return j.message;
  } catch {
    /* not JSON */
  }
  return text.slice(0, 500);
}

const ZSTD_MAGIC = [0x28, 0xb5, 0x2f, 0xfd];

// The plain frame stream from what the transport yields. A browser's fetch has already
// decoded `Content-Encoding: zstd`; anywhere else a zstd stream (told by its magic bytes) is
// decompressed with node:zlib where it has zstd (Node >= 22.15), and refused otherwise.
async function* plainBytes(body) {
  const it = body[Symbol.asyncIterator]();
  let head = new Uint8Array(0);
  while (head.length < 4) {
    const r = await it.next();
    if (r.done) {
      if (head.length) yield head;
      return;
    }
    const joined = new Uint8Array(head.length + r.value.length);
    joined.set(head);
    joined.set(r.value, head.length);
    head = joined;
  }
  const rest = { [Symbol.asyncIterator]: () => it };
  if (!ZSTD_MAGIC.every((b, i) => head[i] === b)) {
    yield head;
    yield* rest;
    return;
  }
  const zlib = globalThis.process?.getBuiltinModule?.('zlib');
  if (!zlib?.createZstdDecompress) {
    throw new BadRequestError('the relay sent a zstd stream, which this runtime cannot decompress; connect with { compression: "none" }');
  }
  const z = zlib.createZstdDecompress();
  (async () => {
    z.write(head);
    for await (const c of rest) if (!z.write(c)) await new Promise((r) => z.once('drain', r));
    z.end();
  })().catch((e) => z.destroy(e));
  for await (const out of z) yield new Uint8Array(out.buffer, out.byteOffset, out.length);
}

async function* readerIterable(body) {
  const reader = body.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      yield value;
    }
  } finally {
    reader.releaseLock?.();
    body.cancel?.().catch(() => {});
  }
}

function sleep(ms, signal) {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

const ROW_EVENTS = new Set(['insert', 'update', 'delete', 'truncate', 'message']);

/**
 * Subscribe to a relay. Returns an async iterable of changes; each change carries `commit`
 * ({ xid, commitLsn, endLsn, commitTime }) shared by all changes of its transaction.
 * With `bootstrap: true` (and no `from`), the first changes are the rows of every table as of
 * one consistent point: inserts with `bootstrap: true` and `commit: null` (docs/bootstrap.md);
 * `position` is that point once they are all delivered, and live changes follow. If the stream
 * breaks before the image is complete, the iterator throws a WalcastError with
 * `code === 'bootstrap_interrupted'`: discard the rows and connect again.
 * Ends quietly when `signal` aborts; throws ResyncRequiredError / BadRequestError / DecodeError
 * when retrying cannot help; reconnects with jittered exponential backoff otherwise.
 */
export function connect(url, options = {}) {
  return new Subscription(url, options);
}

export class Subscription {
  constructor(url, options) {
    this.url = url;
    const { from, tables, signal, transport, backoff, onReconnect, compression, frameVersion, bootstrap, ...decoderOptions } = options;
    this.compression = compression ?? 'auto';
    if (frameVersion !== undefined && ![1, 2, 3].includes(frameVersion)) {
      throw new TypeError(`frameVersion must be 1, 2 or 3, not ${frameVersion}`);
    }
    // Version 3 is the most compact wire (docs/frames.md, "Version 3").
    this.frameVersion = frameVersion ?? 3;
    this._position = from ? lsnToBigInt(from) : null;
    this._bootstrap = Boolean(bootstrap) && !from;
    this.tables = typeof tables === 'string' ? tables.split(',') : tables;
    this.signal = signal;
    this.transport = transport ?? fetchTransport();
    this.backoff = { initialMs: 250, maxMs: 30000, ...backoff };
    this.onReconnect = onReconnect;
    this.decoderOptions = decoderOptions;
    this.reconnects = 0;
    this._iter = this._run();
  }

  /** Commit end LSN of the last delivered transaction (or the start position), as "X/Y". */
  get position() {
    return this._position === null ? null : bigIntToLsn(this._position);
  }

  [Symbol.asyncIterator]() {
    return this;
  }

  next() {
    return this._iter.next();
  }

  return(v) {
    return this._iter.return(v);
  }

  throw(e) {
    return this._iter.throw(e);
  }

  async *_run() {
    const signal = this.signal;
    await ensureInitialized();
    const decoder = new Decoder(this.decoderOptions);
    let attempt = 0;
    try {
      while (!signal?.aborted) {
        const ctl = new AbortController();
        const onAbort = () => ctl.abort(signal.reason);
        signal?.addEventListener('abort', onAbort, { once: true });
        let progressed = false;
        let failure = null;
        // Bootstrap rows are arriving and the image's closing heartbeat has not come yet.
        let bootstrapping = this._bootstrap && this._position === null;
        try {
          const body = await this.transport.open({
            url: this.url,
            from: this.position,
            tables: this.tables,
            bootstrap: bootstrapping,
            signal: ctl.signal,
            compression: this.compression,
            frameVersion: this.frameVersion,
          });
          decoder.newStream();
          let txn = null; // { xid, changes }
          const streams = new Map(); // top-level xid -> changes (streamed, in-progress)
          const prepared = new Map(); // gid -> changes of a prepared, not yet committed transaction
          let streamXid = null;
          for await (const chunk of plainBytes(body)) {
            const events = decoder.push(chunk);
            progressed = true;
            for (const ev of events) {
              const t = ev.type;
              if (ROW_EVENTS.has(t)) {
                if (bootstrapping && t === 'insert' && !txn && streamXid === null) {
                  // A bootstrap row ('b' frame): a pgoutput Insert outside any transaction.
                  ev.bootstrap = true;
                  ev.commit = null;
                  yield ev;
                } else if (t === 'message' && !ev.transactional) {
                  yield ev;
                } else if (streamXid !== null) {
                  streams.get(streamXid).push(ev);
                } else if (txn) {
                  txn.changes.push(ev);
                }
              } else if (t === 'begin') {
                txn = { xid: ev.xid, changes: [] };
              } else if (t === 'commit' || t === 'streamCommit' || t === 'commitPrepared') {
                let changes;
                let xid;
                if (t === 'commit') {
                  changes = txn?.changes ?? [];
                  xid = txn?.xid ?? ev.xid;
                  txn = null;
                } else if (t === 'streamCommit') {
                  changes = streams.get(ev.xid) ?? [];
                  xid = ev.xid;
                  streams.delete(ev.xid);
                } else {
                  changes = prepared.get(ev.gid) ?? [];
                  xid = ev.xid;
                  prepared.delete(ev.gid);
                }
                const end = lsnToBigInt(ev.endLsn);
                if (this._position !== null && end <= this._position) continue; // already delivered
                const commit = { xid, commitLsn: ev.commitLsn, endLsn: ev.endLsn, commitTime: ev.commitTime };
                this._position = end;
                for (const c of changes) {
                  c.commit = commit;
                  yield c;
                }
              } else if (t === 'beginPrepare') {
                txn = { xid: ev.xid, changes: [] };
              } else if (t === 'prepare') {
                // Two-phase: the changes wait for COMMIT PREPARED (or vanish on ROLLBACK PREPARED).
                prepared.set(ev.gid, txn?.changes ?? []);
                txn = null;
              } else if (t === 'streamPrepare') {
                prepared.set(ev.gid, streams.get(ev.xid) ?? []);
                streams.delete(ev.xid);
              } else if (t === 'rollbackPrepared') {
                prepared.delete(ev.gid);
              } else if (t === 'streamStart') {
                streamXid = ev.xid;
                if (!streams.has(ev.xid)) streams.set(ev.xid, []);
              } else if (t === 'streamStop') {
                streamXid = null;
              } else if (t === 'streamAbort') {
                const list = streams.get(ev.xid);
                if (ev.subxid === ev.xid || !list) streams.delete(ev.xid);
                else {
                  // Subtransaction abort: the decoder names every xid whose changes are void.
                  const gone = new Set(ev.discarded.length ? ev.discarded : [ev.subxid]);
                  streams.set(ev.xid, list.filter((c) => !gone.has(c.xid)));
                }
              } else if (t === 'heartbeat' && bootstrapping) {
                // The image is complete: it holds every transaction ending at or before here.
                bootstrapping = false;
                this._bootstrap = false;
                this._position = lsnToBigInt(ev.lsn);
              } else if (t === 'heartbeat') {
                // Nothing in flight: everything up to here was sent, so resume from here.
                if (!txn && streams.size === 0 && prepared.size === 0) {
                  const at = lsnToBigInt(ev.lsn);
                  if (this._position === null || at > this._position) this._position = at;
                }
              } else if (t === 'reset') {
                streams.clear();
                prepared.clear();
                streamXid = null;
                txn = null;
              } else if (t === 'end') {
                if (ev.code === 'resync_required') throw new ResyncRequiredError(ev.message, this.position);
                if (ev.code === 'bad_request') throw new BadRequestError(ev.message);
                failure = new WalcastError(`relay ended the stream: ${ev.code} ${ev.message}`);
              }
            }
            if (failure) break;
          }
        } catch (e) {
          // Undecodable bytes would be undecodable again after a reconnect: surface them.
          if (e instanceof ResyncRequiredError || e instanceof BadRequestError || e instanceof DecodeError) throw e;
          if (signal?.aborted) return;
          failure = e;
        } finally {
          signal?.removeEventListener('abort', onAbort);
          ctl.abort();
        }
        if (signal?.aborted) return;
        if (bootstrapping && progressed) {
          const e = new WalcastError(`the bootstrap was interrupted: ${failure?.message ?? 'stream ended'}`);
          e.code = 'bootstrap_interrupted';
          throw e;
        }
        attempt = progressed ? 0 : attempt + 1;
        const cap = Math.min(this.backoff.maxMs, this.backoff.initialMs * 2 ** Math.min(attempt, 20));
        const delay = Math.random() * cap; // full jitter: a relay restart is not met by a herd
        this.reconnects++;
        this.onReconnect?.({ error: failure, delayMs: delay, position: this.position, attempt });
        await sleep(delay, signal);
      }
    } finally {
      decoder.free();
    }
  }
}
