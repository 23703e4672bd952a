// LSNs are printed the way PostgreSQL does ("16/B374D848") and compared as BigInt.

// The high half changes every 4 GiB of WAL: cache its text (LSNs are formatted per commit).
let lastHi = -1;
let lastHiText = '';

export function formatLsn(hi, lo) {
  if (hi !== lastHi) {
    lastHi = hi;
    lastHiText = hi.toString(16).toUpperCase() + '/';
  }
  return lastHiText + lo.toString(16).toUpperCase();
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
