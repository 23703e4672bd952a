// The Decoder: pushes whole chunks into WASM once, then reads the flat buffers (FLAT.md) and
// builds JS objects. Rows are built by a reader generated once per relation that returns one
// object literal, so every row of a table shares one hidden class and is created in one step.

import { DecodeError, WalcastError, wasmDecodeError } from './errors.js';
import { formatLsn } from './lsn.js';

/** Marker for an unchanged TOASTed column: the value was not sent, it is NOT null. */
export const UNCHANGED_TOAST = Object.freeze({
  __proto__: null,
  [Symbol.toStringTag]: 'UNCHANGED_TOAST',
  toJSON() {
    return { $walcast: 'unchanged_toast' };
  },
});

let wasm = null; // { Core, memory }

/** Called by the environment entry points once the module is instantiated. */
export function setWasm(Core, memory) {
  wasm = { Core, memory };
}

export function isInitialized() {
  return wasm !== null;
}

let initializer = null;

/** The entry point registers how to load the module, so connect() can do it on first use. */
export function setInitializer(fn) {
  initializer = fn;
}

export async function ensureInitialized() {
  if (!wasm && initializer) await initializer();
}

function needWasm() {
  if (!wasm) {
    throw new WalcastError('walcast WASM is not initialized: await init() first');
  }
  return wasm;
}

// --- the chunk being read: module state, because reading is synchronous and monomorphic ---
let W; // Uint32Array: words
let N; // Float64Array: numbers
let S = ''; // the chunk's strings, one JS string
let B; // Uint8Array: blob
let wp = 0;
let np = 0;

const utf8 = new TextDecoder('utf-8');
const PG_EPOCH_MS = 946684800000; // 2000-01-01T00:00:00Z

// A substring of 13 or more characters is, in V8, a slice that keeps its whole parent alive as
// long as it lives. Were every value a substring of the chunk's one string S, an application
// keeping one 17-character email per 64 KiB chunk would keep ~14 KB each (the narrow7 capture).
// So long values are sliced from pieces: flat copies of S of about PIECE characters, made as
// the reading goes forward, each starting at the value that needs it. A kept value keeps at most
// its piece alive, and copying S piece by piece costs far less than copying every value.
const OWN_MIN = 13;
const PIECE = 512;
let piece = ''; // a flat copy of S[pieceStart, pieceStart + piece.length)
let pieceStart = 0;
function substr(a, b) {
  if (b - a < OWN_MIN) return S.substring(a, b);
  if (a < pieceStart || b > pieceStart + piece.length) {
    piece = (' ' + S.substring(a, Math.min(S.length, Math.max(b, a + PIECE)))).slice(1);
    pieceStart = a;
  }
  return piece.substring(a - pieceStart, b - pieceStart);
}

function str() {
  const a = W[wp];
  const b = W[wp + 1];
  wp += 2;
  return substr(a, b);
}

// A Begin's final LSN is its Commit's commit LSN: remember the last one formatted.
let lsnHi = -1;
let lsnLo = -1;
let lsnText = '';
function lsn() {
  const hi = W[wp];
  const lo = W[wp + 1];
  wp += 2;
  if (lo !== lsnLo || hi !== lsnHi) {
    lsnHi = hi;
    lsnLo = lo;
    lsnText = formatLsn(hi, lo);
  }
  return lsnText;
}

function pad(n, w) {
  return String(n).padStart(w, '0');
}

const MAX_DATE_MS = 8.64e15; // the JS Date range

// Civil date of a day count since 1970-01-01, for any year PostgreSQL allows (Date cannot).
function civil(days) {
  const z = days + 719468;
  const era = Math.floor(z / 146097);
  const doe = z - era * 146097;
  const yoe = Math.floor((doe - Math.floor(doe / 1460) + Math.floor(doe / 36524) - Math.floor(doe / 146096)) / 365);
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const d = doy - Math.floor((153 * mp + 2) / 5) + 1;
  const m = mp < 10 ? mp + 3 : mp - 9;
  return [yoe + era * 400 + (m <= 2 ? 1 : 0), m, d];
}

const pad2 = (n) => (n < 10 ? '0' + n : '' + n);

// Days since 2000-01-01 as PostgreSQL prints them: years before 1 AD get " BC" (year 0 is 1 BC),
// appended by the caller after the rest of the value. Consecutive values mostly share a day.
let lastDays = NaN;
let lastYmd = ['', false];
function ymd(days) {
  if (days === lastDays) return lastYmd;
  const [y, m, d] = civil(days + 10957);
  const year = y > 0 ? y : 1 - y;
  lastDays = days;
  lastYmd = [(year >= 1000 ? '' + year : pad(year, 4)) + '-' + pad2(m) + '-' + pad2(d), y <= 0];
  return lastYmd;
}

function dateText(days) {
  const [s, bc] = ymd(days);
  return bc ? s + ' BC' : s;
}

// PostgreSQL's to_json form: ISO 8601 with 'T', microseconds without trailing zeros.
function timestampText(secs, us, zoned) {
  const days = Math.floor(secs / 86400);
  const sod = secs - days * 86400;
  const [date, bc] = ymd(days);
  let s = date + 'T' + pad2(Math.floor(sod / 3600)) + ':' + pad2(Math.floor(sod / 60) % 60) + ':' + pad2(sod % 60);
  if (us !== 0) {
    let f = us;
    let w = 6;
    while (f % 10 === 0) {
      f /= 10;
      w--;
    }
    s += '.' + pad(f, w);
  }
  if (zoned) s += '+00:00';
  return bc ? s + ' BC' : s;
}

function makeCell(opts) {
  const int8 = opts.int8;
  const asDate = opts.timestamps === 'date';
  const numericNumber = opts.numeric === 'number';
  return function cell() {
    switch (W[wp++]) {
      case 5: // NUM
        return N[np++];
      case 8: // STR
        return str();
      case 0:
        return null;
      case 1:
        return UNCHANGED_TOAST;
      case 2: // NOT_IN_KEY: the old key tuple carries no value for this column
        return undefined;
      case 3:
        return false;
      case 4:
        return true;
      case 6: {
        const v = N[np++];
        return int8 === 'number' ? v : int8 === 'bigint' ? BigInt(v) : String(v);
      }
      case 7: {
        const big = BigInt.asIntN(64, (BigInt(W[wp]) << 32n) | BigInt(W[wp + 1]));
        wp += 2;
        return int8 === 'bigint' ? big : String(big);
      }
      case 9: {
        const s = str();
        return numericNumber ? Number(s) : s;
      }
      case 10: // JSON
      case 15: // GENERIC: the native JSON contract's form of an exotic value
        return JSON.parse(str());
      case 11: {
        const off = W[wp];
        const len = W[wp + 1];
        wp += 2;
        return B.slice(off, off + len);
      }
      case 12: {
        const days = N[np++];
        const ms = PG_EPOCH_MS + days * 86400000;
        // Beyond the JS Date range (PostgreSQL allows years up to 5874897): the string form.
        return asDate && Math.abs(ms) <= MAX_DATE_MS ? new Date(ms) : dateText(days);
      }
      case 13:
      case 14: {
        const zoned = W[wp - 1] === 14;
        const secs = N[np];
        const us = N[np + 1];
        np += 2;
        const ms = PG_EPOCH_MS + secs * 1000 + Math.floor(us / 1000);
        return asDate && Math.abs(ms) <= MAX_DATE_MS ? new Date(ms) : timestampText(secs, us, zoned);
      }
      default:
        throw new DecodeError('corrupt flat buffer: unknown cell tag ' + W[wp - 1]);
    }
  };
}

function defineField(o, name, value) {
  Object.defineProperty(o, name, { value, enumerable: true, writable: true, configurable: true });
}

function identName(c) {
  return /^[A-Za-z_$][\w$]*$/.test(c) ? c : JSON.stringify(c);
}

// Type OIDs whose usual cell the per-column readers below take without the generic switch.
const NUMBER_OIDS = new Set([21, 23, 26, 701]); // int2, int4, oid, float8
const STRING_OIDS = new Set([18, 19, 25, 1042, 1043, 2950]); // "char", name, text, bpchar, varchar, uuid

// The cell a column's type almost always has, read without the generic switch: [kind, tag]
// (kind 'num', 'str', 'bool' or 'date'), or null for types that always take the switch.
function fastCell(typeOid, opts) {
  if (NUMBER_OIDS.has(typeOid) || (typeOid === 20 && opts.int8 === 'number')) return ['num', typeOid === 20 ? 6 : 5];
  if (STRING_OIDS.has(typeOid) || (typeOid === 1700 && opts.numeric === 'string')) return ['str', typeOid === 1700 ? 9 : 8];
  if (typeOid === 16) return ['bool', 0];
  if ((typeOid === 1184 || typeOid === 1114) && opts.timestamps === 'date') return ['date', typeOid === 1184 ? 14 : 13];
  return null;
}

// The reader of one column for the CSP fallback reader: the usual cell inline, anything
// else (NULL, TOAST, a domain, …) through the generic `cell`.
function columnReader(typeOid, cell, opts) {
  const [kind, tag] = fastCell(typeOid, opts) ?? [];
  if (kind === 'num') {
    return () => {
      if (W[wp] === tag) {
        wp++;
        return N[np++];
      }
      return cell();
    };
  }
  if (kind === 'str') {
    return () => {
      if (W[wp] === tag) {
        const a = W[wp + 1];
        const b = W[wp + 2];
        wp += 3;
        return substr(a, b);
      }
      return cell();
    };
  }
  if (kind === 'bool') {
    return () => {
      const t = W[wp];
      if (t === 4 || t === 3) {
        wp++;
        return t === 4;
      }
      return cell();
    };
  }
  if (kind === 'date') {
    return () => {
      if (W[wp] === tag) {
        const ms = PG_EPOCH_MS + N[np] * 1000 + Math.floor(N[np + 1] / 1000);
        if (Math.abs(ms) <= MAX_DATE_MS) {
          wp++;
          np += 2;
          return new Date(ms);
        }
      }
      return cell();
    };
  }
  return cell;
}

// The generated readers cannot see this module's variables: while one runs, the read
// position and the chunk's buffers are in `R` (see `_tuple`), and it keeps them in locals.
const EMPTY_W = new Uint32Array(0);
const EMPTY_N = new Float64Array(0);
const R = { W: EMPTY_W, N: EMPTY_N, S: '', wp: 0, np: 0 };

// Reads one cell via the generic switch for a generated reader at positions w, n; the
// new positions are left in R.
function fallbackCell(cell, w, n) {
  wp = w;
  np = n;
  const v = cell();
  R.wp = wp;
  R.np = np;
  return v;
}

// The code of one column in a generated reader: leaves the value in the local `v${i}`.
function cellCode(typeOid, opts, i) {
  const v = `v${i}`;
  const slow = `${v} = fb(w, n); w = R.wp; n = R.np;`;
  const [kind, tag] = fastCell(typeOid, opts) ?? [];
  if (kind === 'num') return `if (W[w] === ${tag}) { ${v} = N[n++]; w++; } else { ${slow} }`;
  if (kind === 'str') {
    return `if (W[w] === ${tag}) { ${v} = sub(W[w + 1], W[w + 2]); w += 3; } else { ${slow} }`;
  }
  if (kind === 'bool') return `t = W[w]; if (t === 4 || t === 3) { ${v} = t === 4; w++; } else { ${slow} }`;
  if (kind === 'date') {
    // Beyond the JS Date range the generic switch gives the string form.
    return `if (W[w] === ${tag} && Math.abs((t = ${PG_EPOCH_MS} + N[n] * 1000 + Math.floor(N[n + 1] / 1000))) <= ${MAX_DATE_MS}) { ${v} = new Date(t); w++; n += 2; } else { ${slow} }`;
  }
  return slow;
}

// One reader per relation: `read()` reads a tuple's cells into locals, each column's usual
// cell inline (generated code), the rest through the generic `cell`, and returns the row as
// one object literal, so every row of a table is created with the same shape in one step.
function makeRowReader(columns, cell, opts, schema, table) {
  const names = columns.map((c) => c.name);
  try {
    const body = columns.map((c, i) => cellCode(c.typeOid, opts, i)).join('\n');
    // A column named __proto__ must become an own field, not the prototype: a computed key.
    const fields = names.map((name, i) => `${name === '__proto__' ? '["__proto__"]' : JSON.stringify(name)}: v${i}`).join(', ');
    const label = identName(`${schema}_${table}`).replace(/[^\w$]/g, '_');
    const code = `return function ${/^\d/.test(label) ? '_' + label : label}() {
const W = R.W, N = R.N, S = R.S;
let w = R.wp, n = R.np, t${names.map((_, i) => `, v${i}`).join('')};
${body}
R.wp = w;
R.np = n;
return { ${fields} };
};`;
    const fb = (w, n) => fallbackCell(cell, w, n);
    // eslint-disable-next-line no-new-func
    return new Function('R', 'fb', 'sub', code)(R, fb, substr);
  } catch {
    // Content-Security-Policy without 'unsafe-eval': a generic (slower) reader.
    const readers = columns.map((c) => columnReader(c.typeOid, cell, opts));
    return function readRow() {
      wp = R.wp;
      np = R.np;
      const o = {};
      for (let i = 0; i < names.length; i++) defineField(o, names[i], readers[i]());
      R.wp = wp;
      R.np = np;
      return o;
    };
  }
}

const REPLICA_IDENTITY = { 100: 'default', 110: 'nothing', 102: 'full', 105: 'index' };
const DEFAULTS = { int8: 'number', timestamps: 'date', numeric: 'string' };

// Every call's bytes are written straight into the Core's input buffer in WASM memory (no
// argument copied into a fresh allocation and freed again); returns their length.
function input(core, bytes) {
  // input_ptr first: it may grow the memory, which detaches the old buffer.
  const ptr = core.input_ptr(bytes.length);
  new Uint8Array(needWasm().memory.buffer, ptr, bytes.length).set(bytes);
  return bytes.length;
}

// Raw messages cross into WASM as one buffer, `u32be length | message` repeated, packed in
// place in the input buffer.
function inputMessages(core, msgs) {
  let total = 0;
  for (const m of msgs) total += 4 + m.length;
  const ptr = core.input_ptr(total);
  const mem = new Uint8Array(needWasm().memory.buffer, ptr, total);
  let o = 0;
  for (const m of msgs) {
    const n = m.length;
    mem[o] = n >>> 24;
    mem[o + 1] = (n >>> 16) & 255;
    mem[o + 2] = (n >>> 8) & 255;
    mem[o + 3] = n & 255;
    mem.set(m, o + 4);
    o += 4 + n;
  }
  return total;
}

/**
 * Stateful decoder of a walcast frame stream (`push`) or of raw pgoutput messages
 * (`decodeMessage(s)`). Keeps the relation cache and stream state like the native decoder.
 */
export class Decoder {
  constructor(options = {}) {
    const { Core } = needWasm();
    this.options = { ...DEFAULTS, ...options };
    for (const [k, ok] of [['int8', ['number', 'bigint', 'string']], ['timestamps', ['date', 'string']], ['numeric', ['string', 'number']]]) {
      if (!ok.includes(this.options[k])) throw new TypeError(`option ${k} must be one of ${ok.join(', ')}`);
    }
    this._core = new Core();
    this._meta = this._core.meta_ptr() >>> 2;
    this._cell = makeCell(this.options);
    this._asDate = this.options.timestamps === 'date';
    /** @type {Map<number, object>} relation id -> relation */
    this.relations = new Map();
    this._lastRelId = -1;
    this._lastRel = null;
  }

  /** Feed one chunk of a walcast frame stream (any split); returns the events it completed. */
  push(chunk) {
    return this._read(this._pushWasm(chunk));
  }

  // The WASM half of push(): decodes into the flat buffers, returns the status (benches time it).
  _pushWasm(chunk) {
    return this._core.push_frames(input(this._core, chunk));
  }

  /** Decode one raw pgoutput message (the payload of an XLogData / 'w' frame). */
  decodeMessage(msg) {
    return this.decodeMessages([msg]);
  }

  /** Decode several raw pgoutput messages with one WASM crossing. */
  decodeMessages(msgs) {
    return this._batch(msgs, () => this._read(this._core.push_messages(inputMessages(this._core, msgs))));
  }

  /**
   * Like push(), but returns the native MessagePack records (one per event; a relation record
   * before a relation's first row) instead of objects. Control frames have no MessagePack form.
   */
  decodeToMsgpack(chunk) {
    return this._call(() => this._core.frames_to_msgpack(input(this._core, chunk)));
  }

  /** MessagePack records for raw pgoutput messages. */
  messagesToMsgpack(msgs) {
    return this._batch(msgs, () => this._call(() => this._core.messages_to_msgpack(inputMessages(this._core, msgs))));
  }

  /** The native JSON lines contract (docs/output.md) for raw pgoutput messages. */
  messagesToJsonLines(msgs) {
    return this._batch(msgs, () => this._call(() => this._core.messages_to_jsonl(inputMessages(this._core, msgs))));
  }

  // A decode error in one of several messages says which (its offset counts within it).
  _batch(msgs, fn) {
    try {
      return fn();
    } catch (e) {
      if (e instanceof DecodeError && e.messageIndex !== undefined && msgs.length > 1) {
        e.message += ` (message ${e.messageIndex} of ${msgs.length})`;
      }
      throw e;
    }
  }

  // The MessagePack / JSON lines calls return undefined on a decode error.
  _call(fn) {
    let out;
    try {
      out = fn();
    } catch (e) {
      if (e instanceof TypeError && /is not a function/.test(e.message)) {
        throw new WalcastError('this walcast.wasm was built without MessagePack / JSON lines output');
      }
      throw e;
    }
    if (out === undefined) throw this._error();
    return out;
  }

  _error() {
    return wasmDecodeError(this._core.error_nums(), this._core.error_text());
  }

  /** The next chunk starts a new frame stream (a new connection). Relations stay cached. */
  newStream() {
    this._core.new_stream();
  }

  /** Release the WASM memory of this decoder. */
  free() {
    this._core.free();
    this._core = null;
  }

  _read(status) {
    const buf = needWasm().memory.buffer;
    const m = new Uint32Array(buf, this._meta << 2, 9);
    W = new Uint32Array(buf, m[0], m[1]);
    N = new Float64Array(buf, m[2], m[3]);
    S = m[5] === 0 ? '' : utf8.decode(new Uint8Array(buf, m[4], m[5]));
    piece = '';
    pieceStart = 0;
    B = new Uint8Array(buf, m[6], m[7]);
    wp = 0;
    np = 0;
    R.W = W;
    R.N = N;
    R.S = S;
    const out = [];
    try {
      while (wp < W.length) out.push(this._event());
    } finally {
      W = N = B = undefined;
      S = piece = '';
      R.W = EMPTY_W;
      R.N = EMPTY_N;
      R.S = '';
    }
    if (status !== 0) {
      const err = this._error();
      err.events = out; // what was decoded before the failure
      throw err;
    }
    return out;
  }

  _rel(id) {
    // Consecutive changes mostly touch the same table.
    if (id === this._lastRelId) return this._lastRel;
    const r = this.relations.get(id);
    if (!r) throw new DecodeError(`relation ${id} was not described before use`);
    this._lastRelId = id;
    this._lastRel = r;
    return r;
  }

  _tuple(rel) {
    const n = W[wp++];
    if (n === rel.columns.length) {
      R.wp = wp;
      R.np = np;
      const row = rel.readRow();
      wp = R.wp;
      np = R.np;
      return row;
    }
    // Defensive: a tuple shape that differs from the cached relation (never sent by PostgreSQL).
    const o = {};
    for (let i = 0; i < n; i++) defineField(o, rel.columns[i]?.name ?? `col${i}`, this._cell());
    return o;
  }

  _event() {
    const tag = W[wp++];
    switch (tag) {
      case 4:
      case 5:
      case 6: {
        const xid = W[wp++];
        const relation = this._rel(W[wp++]);
        const mask = W[wp++];
        const n = (mask & 1) !== 0 ? this._tuple(relation) : null;
        const o = (mask & 2) !== 0 ? this._tuple(relation) : null;
        const k = (mask & 4) !== 0 ? this._tuple(relation) : null;
        return { type: tag === 4 ? 'insert' : tag === 5 ? 'update' : 'delete', relation, xid, new: n, old: o, key: k };
      }
      case 1: {
        const finalLsn = lsn();
        const xid = W[wp++];
        return { type: 'begin', xid, finalLsn, commitTime: this._time() };
      }
      case 2: {
        const xid = W[wp++];
        const flags = W[wp++];
        const commitLsn = lsn();
        const endLsn = lsn();
        return { type: 'commit', xid, flags, commitLsn, endLsn, commitTime: this._time() };
      }
      case 3: {
        const xid = W[wp++];
        const id = W[wp++];
        const schema = str();
        const table = str();
        const ident = W[wp++];
        const n = W[wp++];
        const columns = [];
        for (let i = 0; i < n; i++) {
          const flags = W[wp++];
          const name = str();
          const typeOid = W[wp++];
          const typeMod = W[wp++] | 0;
          const col = { name, typeOid, typeMod, key: (flags & 1) === 1 };
          if ((flags & 2) !== 0) col.typeName = str();
          columns.push(col);
        }
        const relation = { id, schema, table, replicaIdentity: REPLICA_IDENTITY[ident] ?? String.fromCharCode(ident), columns };
        Object.defineProperty(relation, 'readRow', { value: makeRowReader(columns, this._cell, this.options, schema, table) });
        this.relations.set(id, relation);
        this._lastRelId = -1;
        return { type: 'relation', xid, relation };
      }
      case 7: {
        const xid = W[wp++];
        const options = W[wp++];
        const n = W[wp++];
        const relations = [];
        for (let i = 0; i < n; i++) relations.push(this._rel(W[wp++]));
        return { type: 'truncate', xid, relations, cascade: (options & 1) !== 0, restartIdentity: (options & 2) !== 0 };
      }
      case 8: {
        const xid = W[wp++];
        const transactional = W[wp++] === 1;
        const at = lsn();
        const prefix = str();
        const off = W[wp];
        const len = W[wp + 1];
        wp += 2;
        return { type: 'message', xid, transactional, lsn: at, prefix, content: B.slice(off, off + len) };
      }
      case 9: {
        const at = lsn();
        return { type: 'origin', lsn: at, name: str() };
      }
      case 10: {
        const xid = W[wp++];
        const oid = W[wp++];
        return { type: 'type', xid, oid, schema: str(), name: str() };
      }
      case 11: {
        const xid = W[wp++];
        return { type: 'streamStart', xid, first: W[wp++] === 1 };
      }
      case 12:
        return { type: 'streamStop' };
      case 13: {
        const xid = W[wp++];
        const flags = W[wp++];
        const commitLsn = lsn();
        const endLsn = lsn();
        return { type: 'streamCommit', xid, flags, commitLsn, endLsn, commitTime: this._time() };
      }
      case 14: {
        const xid = W[wp++];
        const subxid = W[wp++];
        const hasLsn = W[wp++] === 1;
        const at = lsn();
        const t = this._time();
        const discarded = Array.from(W.subarray(wp + 1, wp + 1 + W[wp]));
        wp += 1 + discarded.length;
        return { type: 'streamAbort', xid, subxid, abortLsn: hasLsn ? at : null, abortTime: hasLsn ? t : null, discarded };
      }
      case 15:
      case 16:
      case 17: {
        const xid = W[wp++];
        const gid = str();
        const prepareLsn = lsn();
        const endLsn = lsn();
        return { type: tag === 15 ? 'beginPrepare' : tag === 16 ? 'prepare' : 'streamPrepare', xid, gid, prepareLsn, endLsn, prepareTime: this._time() };
      }
      case 18: {
        const xid = W[wp++];
        const gid = str();
        const commitLsn = lsn();
        const endLsn = lsn();
        return { type: 'commitPrepared', xid, gid, commitLsn, endLsn, commitTime: this._time() };
      }
      case 19: {
        const xid = W[wp++];
        const gid = str();
        const prepareEndLsn = lsn();
        const rollbackEndLsn = lsn();
        const prepareTime = this._time();
        return { type: 'rollbackPrepared', xid, gid, prepareEndLsn, rollbackEndLsn, prepareTime, rollbackTime: this._time() };
      }
      case 23:
        return { type: 'unknown' };
      case 20:
        return { type: 'heartbeat', lsn: lsn() };
      case 21:
        return { type: 'reset' };
      case 22: {
        const text = str();
        let code = 'unknown';
        let message = text;
        try {
          const j = JSON.parse(text);
          code = String(j.code ?? code);
          message = String(j.message ?? '');
        } catch {
          /* keep the raw text as the message */
        }
        return { type: 'end', code, message };
      }
      default:
        throw new DecodeError('corrupt flat buffer: unknown event tag ' + tag);
    }
  }

  _time() {
    const secs = N[np];
    const us = N[np + 1];
    np += 2;
    return this._asDate ? new Date(PG_EPOCH_MS + secs * 1000 + Math.floor(us / 1000)) : timestampText(secs, us, true);
  }
}
