// Types of the `walcast` npm package (same API in Node, browsers, workers and bundlers).

/** An LSN as PostgreSQL prints it, e.g. "16/B374D848". */
export type Lsn = string;

/** Marker for an unchanged TOASTed column: its value was not sent. It is never `null`. */
export declare const UNCHANGED_TOAST: { readonly [Symbol.toStringTag]: 'UNCHANGED_TOAST'; toJSON(): { $walcast: 'unchanged_toast' } };
export type UnchangedToast = typeof UNCHANGED_TOAST;

export interface DecoderOptions {
  /**
   * int8/bigint columns. 'number' (default): a number when |v| <= 2^53-1, else an exact decimal
   * string (so the value is never silently rounded). 'bigint': always a BigInt. 'string': always a string.
   */
  int8?: 'number' | 'bigint' | 'string';
  /**
   * date/timestamp/timestamptz. 'date' (default): a JS Date (millisecond precision; timestamp
   * without time zone is read as UTC). 'string': PostgreSQL's to_json text with microseconds,
   * e.g. "2024-01-02T03:04:05.123456+00:00". ±infinity is always the string "infinity"/"-infinity".
   */
  timestamps?: 'date' | 'string';
  /** numeric. 'string' (default, exact, as PostgreSQL prints it) or 'number' (may round). */
  numeric?: 'string' | 'number';
}

/**
 * A column value. int2/int4/oid/float4/float8 are numbers; bool is boolean; text-like types,
 * uuid, bit and (by default) numeric are strings; json/jsonb are parsed; bytea is a Uint8Array;
 * other types (arrays, interval, inet, ...) are the JSON form of the native JSON contract.
 * `undefined` only in an old key tuple, for columns that are not part of the key.
 */
export type CellValue = null | undefined | boolean | number | bigint | string | Date | Uint8Array | UnchangedToast | unknown;
export type Row = Record<string, CellValue>;

export interface Column {
  name: string;
  typeOid: number;
  typeMod: number;
  /** Part of the replica identity key. */
  key: boolean;
  /** "schema.name" of a user-defined type, when PostgreSQL described it. */
  typeName?: string;
}

export interface Relation {
  id: number;
  schema: string;
  table: string;
  replicaIdentity: 'default' | 'nothing' | 'full' | 'index' | string;
  columns: Column[];
}

export interface CommitInfo {
  xid: number | undefined;
  commitLsn: Lsn;
  /** The resume position: persist it with your writes, pass it back as `from`. */
  endLsn: Lsn;
  commitTime: Date | string;
}

interface RowChangeBase {
  relation: Relation;
  /** Transaction id; 0 outside streamed transactions (pgoutput sends it only there). */
  xid: number;
  /** Set by connect(): the transaction this change belongs to (null for a bootstrap row). */
  commit?: CommitInfo | null;
  /** Set by connect({ bootstrap: true }) on the rows of the bootstrap image. */
  bootstrap?: true;
}
/**
 * Rows as in the native JSON contract: `new` (insert, update), `old` (the whole old row, under
 * REPLICA IDENTITY FULL), `key` (the old key under DEFAULT/INDEX: other columns `undefined`).
 */
export interface InsertEvent extends RowChangeBase { type: 'insert'; new: Row; old: null; key: null }
export interface UpdateEvent extends RowChangeBase { type: 'update'; new: Row; old: Row | null; key: Row | null }
export interface DeleteEvent extends RowChangeBase { type: 'delete'; new: null; old: Row | null; key: Row | null }
export interface TruncateEvent { type: 'truncate'; xid: number; relations: Relation[]; cascade: boolean; restartIdentity: boolean; commit?: CommitInfo }
export interface MessageEvent { type: 'message'; xid: number; transactional: boolean; lsn: Lsn; prefix: string; content: Uint8Array; commit?: CommitInfo }
export type Change = InsertEvent | UpdateEvent | DeleteEvent | TruncateEvent | MessageEvent;

export type WalcastEvent =
  | Change
  | { type: 'begin'; xid: number; finalLsn: Lsn; commitTime: Date | string }
  | { type: 'commit'; xid: number; flags: number; commitLsn: Lsn; endLsn: Lsn; commitTime: Date | string }
  | { type: 'relation'; xid: number; relation: Relation }
  | { type: 'origin'; lsn: Lsn; name: string }
  | { type: 'type'; xid: number; oid: number; schema: string; name: string }
  | { type: 'streamStart'; xid: number; first: boolean }
  | { type: 'streamStop' }
  | { type: 'streamCommit'; xid: number; flags: number; commitLsn: Lsn; endLsn: Lsn; commitTime: Date | string }
  | { type: 'streamAbort'; xid: number; subxid: number; abortLsn: Lsn | null; abortTime: Date | string | null; discarded: number[] }
  | { type: 'beginPrepare' | 'prepare' | 'streamPrepare'; xid: number; gid: string; prepareLsn: Lsn; endLsn: Lsn; prepareTime: Date | string }
  | { type: 'commitPrepared'; xid: number; gid: string; commitLsn: Lsn; endLsn: Lsn; commitTime: Date | string }
  | { type: 'rollbackPrepared'; xid: number; gid: string; prepareEndLsn: Lsn; rollbackEndLsn: Lsn; prepareTime: Date | string; rollbackTime: Date | string }
  | { type: 'unknown' }
  | { type: 'heartbeat'; lsn: Lsn }
  | { type: 'reset' }
  | { type: 'end'; code: 'resync_required' | 'shutdown' | 'bad_request' | string; message: string };

/** Low-level, synchronous, stateful decoder. Requires the WASM to be initialized (see init). */
export declare class Decoder {
  constructor(options?: DecoderOptions);
  readonly options: Required<DecoderOptions>;
  readonly relations: Map<number, Relation>;
  /** Feed one chunk of a walcast frame stream, split anywhere; returns the events it completed. */
  push(chunk: Uint8Array): WalcastEvent[];
  /** Decode one raw pgoutput message. */
  decodeMessage(message: Uint8Array): WalcastEvent[];
  /** Decode several raw pgoutput messages in one WASM call. */
  decodeMessages(messages: Uint8Array[]): WalcastEvent[];
  /** Like push(), but the native MessagePack records of the WAL frames' events. */
  decodeToMsgpack(chunk: Uint8Array): Uint8Array;
  /** The native MessagePack records of raw pgoutput messages. */
  messagesToMsgpack(messages: Uint8Array[]): Uint8Array;
  /** The native JSON lines contract (docs/output.md) of raw pgoutput messages. */
  messagesToJsonLines(messages: Uint8Array[]): string;
  /** The next chunk starts a new frame stream (after a reconnect). */
  newStream(): void;
  /** Free the WASM-side memory. */
  free(): void;
}

export interface TransportRequest { url: string; from: Lsn | null; tables?: string[]; bootstrap?: boolean; signal: AbortSignal; compression?: Compression; frameVersion?: FrameVersion }
/**
 * Stream compression: 'auto' (default) lets the runtime's Accept-Encoding decide (browsers ask
 * for zstd and decode it natively); 'zstd' asks for it explicitly (browsers, or Node with
 * zlib zstd, >= 22.15); 'none' turns it off.
 */
export type Compression = 'auto' | 'zstd' | 'none';
/**
 * Frame format on the wire (docs/frames.md): 3 (default) codes each row against the previous
 * row of its table and is the most compact, with or without compression; 2 and 1 are for
 * relays that predate it. Changes are the same whichever is used.
 */
export type FrameVersion = 1 | 2 | 3;
/** How bytes arrive: HTTP fetch today, WebTransport later. */
export interface Transport { open(request: TransportRequest): Promise<AsyncIterable<Uint8Array>> }
export declare function fetchTransport(options?: { fetch?: typeof fetch; headers?: Record<string, string> }): Transport;

export interface ConnectOptions extends DecoderOptions {
  /** Resume after this commit end LSN (every transaction with end LSN <= from is already applied). */
  from?: Lsn;
  /** Only these tables, e.g. ["public.orders"]. */
  tables?: string[] | string;
  /**
   * Start with every row of the tables as of one consistent point (inserts with
   * `bootstrap: true`, `commit: null`), then the changes after it (docs/bootstrap.md).
   * Ignored with `from`.
   */
  bootstrap?: boolean;
  /** Abort to stop: the iteration then ends quietly. */
  signal?: AbortSignal;
  transport?: Transport;
  backoff?: { initialMs?: number; maxMs?: number };
  onReconnect?: (info: { error: unknown; delayMs: number; position: Lsn | null; attempt: number }) => void;
  compression?: Compression;
  frameVersion?: FrameVersion;
}

export declare class Subscription implements AsyncIterableIterator<Change> {
  /** Commit end LSN of the last delivered transaction. */
  readonly position: Lsn | null;
  readonly reconnects: number;
  next(): Promise<IteratorResult<Change>>;
  return(value?: unknown): Promise<IteratorResult<Change>>;
  throw(e?: unknown): Promise<IteratorResult<Change>>;
  [Symbol.asyncIterator](): Subscription;
}

/** Subscribe to a relay's change stream; reconnects and resumes without gaps or duplicates. */
export declare function connect(url: string | URL, options?: ConnectOptions): Subscription;

/**
 * Load the WASM module. Optional in Node (done at import) and before connect() (done on first
 * use); required before `new Decoder()` in browsers and workers. Accepts the .wasm URL, its
 * bytes, a fetch Response, or a compiled WebAssembly.Module.
 */
export declare function init(input?: string | URL | Response | BufferSource | WebAssembly.Module): Promise<void>;

export declare class WalcastError extends Error {}
/**
 * Undecodable bytes. From the WASM decoder, `kind` names the walcast-decoder `ErrorKind`
 * (e.g. 'BadChecksum', 'Truncated') and `offset` is the byte it was found at: in the frame
 * stream, or, for raw messages, in message `messageIndex` of the batch.
 */
export declare class DecodeError extends WalcastError { events?: WalcastEvent[]; kind?: string; offset?: number; messageIndex?: number }
export declare class ResyncRequiredError extends WalcastError { readonly code: 'resync_required'; readonly position: Lsn | null }
export declare class BadRequestError extends WalcastError { readonly code: 'bad_request'; readonly status?: number }

export declare function parseLsn(lsn: Lsn): bigint;
export declare function formatLsn(lsn: bigint): Lsn;
