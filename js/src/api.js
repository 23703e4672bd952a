// The public API shared by every environment entry point.
export { Decoder, UNCHANGED_TOAST } from './core.js';
export { connect, Subscription, fetchTransport } from './connect.js';
export { WalcastError, DecodeError, ResyncRequiredError, BadRequestError } from './errors.js';
export { lsnToBigInt as parseLsn, bigIntToLsn as formatLsn } from './lsn.js';
