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
