// LSNs are printed the way PostgreSQL does ("16/B374D848") and compared as BigInt.

export function formatLsn(hi, lo) {
  return hi.toString(16).toUpperCase() + '/' + lo.toString(16).toUpperCase();
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
