// LSNs are printed the way PostgreSQL does ("16/B374D848") and compared as BigInt.

// The high half changes every 4 GiB of WAL: cache its text (LSNs are formatted per commit).
let lastHi = -1;
let lastHiText = '';

// Uppercase hex of a byte, without (H1) and with (H2) a leading zero. Joining table entries is
// ~2.5x faster than Number#toString(16).toUpperCase() (two string allocations per half).
const H1 = Array.from({ length: 256 }, (_, i) => i.toString(16).toUpperCase());
const H2 = H1.map((h) => h.padStart(2, '0'));

export function formatLsn(hi, lo) {
  if (hi !== lastHi) {
    lastHi = hi;
    lastHiText = hi.toString(16).toUpperCase() + '/';
  }
  const p = lastHiText;
  if (lo < 0x100) return p + H1[lo];
  if (lo < 0x10000) return p + H1[lo >>> 8] + H2[lo & 255];
  if (lo < 0x1000000) return p + H1[lo >>> 16] + H2[(lo >>> 8) & 255] + H2[lo & 255];
  return p + H1[lo >>> 24] + H2[(lo >>> 16) & 255] + H2[(lo >>> 8) & 255] + H2[lo & 255];
}

export function lsnToBigInt(lsn) {
  if (typeof lsn === 'bigint') return lsn;
  const m = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/.exec(String(lsn));
  if (!m) throw new TypeError(`invalid LSN ${JSON.stringify(lsn)}: expected like 16/B374D848`);
  return (BigInt('0x' + m[1]) << 32n) | BigInt('0x' + m[2]);
}

export function bigIntToLsn(v) {
  return formatLsn(Number(v >> 32n), Number(v & 0xffffffffn));
}
