// Typed errors: callers branch on the class, not on message text.

export class WalcastError extends Error {
  constructor(message, options) {
    super(message, options);
    this.name = 'WalcastError';
  }
}

/** The stream's bytes could not be decoded (corrupt frame, malformed pgoutput). */
export class DecodeError extends WalcastError {
  constructor(message) {
    super(message);
    this.name = 'DecodeError';
  }
}

// walcast-decoder's ErrorKind names, by the code walcast-wasm's `kind_code` gives them.
const KINDS = [
  'Unknown', 'Truncated', 'UnknownMessageTag', 'UnknownColumnKind', 'Unexpected', 'UnterminatedString', 'InvalidUtf8',
  'BadLength', 'TrailingBytes', 'UnknownRelation', 'ColumnCountMismatch', 'InvalidValue', 'BadChecksum',
  'UnsupportedVersion', 'OutOfPlace',
];

// Rust's `{:?}` of a char made from one byte (the only chars an ErrorKind carries).
function charDebug(c) {
  const esc = { 0: '\\0', 9: '\\t', 10: '\\n', 13: '\\r', 39: "\\'", 92: '\\\\' }[c];
  if (esc) return `'${esc}'`;
  if (c < 32 || (c >= 127 && c <= 160) || c === 173) return `'\\u{${c.toString(16)}}'`;
  return `'${String.fromCharCode(c)}'`;
}

/**
 * The DecodeError of a WASM-side failure, from the numbers and text walcast-wasm reports
 * (`Core.error_nums`: kind code, offset, fields; `Core.error_text`: context NUL text). The
 * message is the native decoder's Display text: "<what> at byte <offset> (in <context>)".
 */
export function wasmDecodeError(nums, strings) {
  const [code, offset, a, b, c, message] = nums;
  const [context, text] = strings.split('\0');
  const what = [
    () => 'decode error',
    () => `input ends early: ${a} more byte(s) needed`,
    () => `unknown pgoutput message tag ${charDebug(a)}`,
    () => `unknown tuple column kind ${charDebug(a)}`,
    () => `unexpected byte ${a}, expected ${text}`,
    () => 'string is not NUL-terminated',
    () => 'invalid UTF-8',
    () => `length ${BigInt.asIntN(64, (BigInt(a) << 32n) | BigInt(b))} is negative or larger than the input`,
    () => `${a} trailing byte(s) after the message`,
    () => `relation ${a} was not described by a Relation message before use`,
    () => `tuple has ${c} columns but relation ${a} has ${b}`,
    () => `invalid value: ${text}`,
    () => 'bad frame checksum',
    () => `unsupported format version ${a}`,
    () => `message out of place: ${text}`,
  ][code] ?? (() => 'decode error');
  const err = new DecodeError(`${what()} at byte ${offset}${context ? ` (in ${context})` : ''}`);
  err.kind = KINDS[code] ?? 'Unknown';
  err.offset = offset;
  // Raw messages: which one of the batch; the offset counts from its first byte.
  if (message !== undefined && message !== 0xffffffff) err.messageIndex = message;
  return err;
}

/**
 * The relay can no longer serve the requested position (slot invalidated, log retention passed
 * it). Reconnecting cannot help: the consumer must rebuild its copy from a new snapshot.
 */
export class ResyncRequiredError extends WalcastError {
  constructor(message, position) {
    super(message);
    this.name = 'ResyncRequiredError';
    this.code = 'resync_required';
    /** The position (commit end LSN) the client asked to resume from. */
    this.position = position;
  }
}

/** The relay rejected the request itself (bad LSN, unknown table): retrying cannot help. */
export class BadRequestError extends WalcastError {
  constructor(message, status) {
    super(message);
    this.name = 'BadRequestError';
    this.code = 'bad_request';
    this.status = status;
  }
}
