// Builders for pgoutput messages and walcast frame streams, byte for byte as PostgreSQL and the
// relay produce them (PostgreSQL docs, "Logical Replication Message Formats"; js/FLAT.md links
// the frame spec). Used by the tests and the benchmark to make inputs without a server.

const enc = new TextEncoder();

class Buf {
  constructor() {
    this.parts = [];
    this.len = 0;
  }
  bytes(b) {
    this.parts.push(b);
    this.len += b.length;
    return this;
  }
  u8(v) {
    return this.bytes(Uint8Array.of(v));
  }
  u16(v) {
    const b = new Uint8Array(2);
    new DataView(b.buffer).setUint16(0, v);
    return this.bytes(b);
  }
  u32(v) {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, v >>> 0);
    return this.bytes(b);
  }
  u64(v) {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, BigInt.asUintN(64, BigInt(v)));
    return this.bytes(b);
  }
  cstr(s) {
    return this.bytes(enc.encode(s)).u8(0);
  }
  done() {
    const out = new Uint8Array(this.len);
    let o = 0;
    for (const p of this.parts) {
      out.set(p, o);
      o += p.length;
    }
    return out;
  }
}

const tag = (c) => c.charCodeAt(0);
const xidPrefix = (b, xid) => (xid === undefined ? b : b.u32(xid));

/** Microseconds since 2000-01-01 for a JS Date or ISO string. */
export function pgTime(d) {
  return BigInt(new Date(d).getTime() - 946684800000) * 1000n;
}

export const pg = {
  begin: (finalLsn, time, xid) => new Buf().u8(tag('B')).u64(finalLsn).u64(time).u32(xid).done(),
  commit: (lsn, endLsn, time) => new Buf().u8(tag('C')).u8(0).u64(lsn).u64(endLsn).u64(time).done(),
  /** columns: [{ name, oid, key?, typmod? }] */
  relation(relid, schema, table, columns, { ident = 'd', xid } = {}) {
    const b = xidPrefix(new Buf().u8(tag('R')), xid).u32(relid).cstr(schema).cstr(table).u8(tag(ident)).u16(columns.length);
    for (const c of columns) b.u8(c.key ? 1 : 0).cstr(c.name).u32(c.oid).u32(c.typmod ?? 0xffffffff);
    return b.done();
  },
  /** values: string (text), null ('n'), pg.TOAST ('u'), or { binary: Uint8Array } */
  tuple(b, values) {
    b.u16(values.length);
    for (const v of values) {
      if (v === null) b.u8(tag('n'));
      else if (v === pg.TOAST) b.u8(tag('u'));
      else if (v && v.binary) b.u8(tag('b')).u32(v.binary.length).bytes(v.binary);
      else {
        const t = enc.encode(String(v));
        b.u8(tag('t')).u32(t.length).bytes(t);
      }
    }
    return b;
  },
  insert: (relid, values, xid) => pg.tuple(xidPrefix(new Buf().u8(tag('I')), xid).u32(relid).u8(tag('N')), values).done(),
  update(relid, values, { old, oldKind = 'O', xid } = {}) {
    const b = xidPrefix(new Buf().u8(tag('U')), xid).u32(relid);
    if (old) pg.tuple(b.u8(tag(oldKind)), old);
    return pg.tuple(b.u8(tag('N')), values).done();
  },
  delete: (relid, old, { oldKind = 'K', xid } = {}) => pg.tuple(xidPrefix(new Buf().u8(tag('D')), xid).u32(relid).u8(tag(oldKind)), old).done(),
  truncate(relids, options = 0, xid) {
    const b = xidPrefix(new Buf().u8(tag('T')), xid).u32(relids.length).u8(options);
    for (const r of relids) b.u32(r);
    return b.done();
  },
  message: (prefix, content, { transactional = true, lsn = 0, xid } = {}) =>
    xidPrefix(new Buf().u8(tag('M')), xid).u8(transactional ? 1 : 0).u64(lsn).cstr(prefix).u32(content.length).bytes(content).done(),
  streamStart: (xid, first) => new Buf().u8(tag('S')).u32(xid).u8(first ? 1 : 0).done(),
  streamStop: () => Uint8Array.of(tag('E')),
  streamCommit: (xid, lsn, endLsn, time) => new Buf().u8(tag('c')).u32(xid).u8(0).u64(lsn).u64(endLsn).u64(time).done(),
  streamAbort: (xid, subxid) => new Buf().u8(tag('A')).u32(xid).u32(subxid).done(),
  TOAST: Symbol('u'),
};

// --- walcast frames ---
const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    t[i] = c >>> 0;
  }
  return t;
})();

export function crc32c(bytes) {
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

export const STREAM_HEADER = Uint8Array.of(0x57, 0x41, 0x4c, 0x43, 0x41, 0x53, 0x54, 0, 0, 1, 0, 0);

/** One frame: kind is 'w' | 'k' | 'x' | 'e' | any char. */
export function frame(kind, lsn = 0n, payload = new Uint8Array(0)) {
  const body = new Buf().u8(tag(kind)).u64(lsn).bytes(payload).done();
  return new Buf().u32(body.length).u32(crc32c(body)).bytes(body).done();
}

export const frames = {
  msg: (payload, lsn = 0n) => frame('w', lsn, payload),
  heartbeat: (lsn) => frame('k', lsn),
  reset: () => frame('x'),
  end: (code, message) => frame('e', 0n, enc.encode(JSON.stringify({ code, message }))),
};

/** A whole stream: header then frames. */
export function stream(...parts) {
  const b = new Buf().bytes(STREAM_HEADER);
  for (const p of parts.flat()) b.bytes(p);
  return b.done();
}

export function concat(parts) {
  const b = new Buf();
  for (const p of parts) b.bytes(p);
  return b.done();
}

/** Parse a fixture line: `\x0123abcd` hex of one pgoutput message. */
export function fromHexLine(line) {
  const h = line.trim().replace(/^\\x/, '');
  const out = new Uint8Array(h.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(h.substr(i * 2, 2), 16);
  return out;
}
