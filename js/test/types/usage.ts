// Compiled with `tsc --noEmit` by test/types.test.mjs: the published types describe the API.
import { connect, Decoder, init, UNCHANGED_TOAST, ResyncRequiredError, fetchTransport, parseLsn, formatLsn, type Change, type WalcastEvent, type Transport } from 'walcast';

async function main(): Promise<void> {
  await init();
  await init(new URL('https://cdn.example/walcast.wasm'));
  const d = new Decoder({ int8: 'bigint', timestamps: 'string', numeric: 'number' });
  const events: WalcastEvent[] = d.push(new Uint8Array(0));
  for (const e of events) {
    if (e.type === 'insert') {
      const v = e.new['id'];
      if (v === UNCHANGED_TOAST) console.log('toast');
      console.log(e.relation.schema, e.relation.columns[0].typeOid);
    } else if (e.type === 'streamAbort') {
      const xs: number[] = e.discarded;
      console.log(xs);
    }
  }
  const mp: Uint8Array = d.decodeToMsgpack(new Uint8Array(0));
  const jl: string = d.messagesToJsonLines([new Uint8Array(0)]);
  console.log(mp, jl);
  const transport: Transport = fetchTransport({ headers: { authorization: 'Bearer x' } });
  const sub = connect('http://127.0.0.1:7400', { from: '0/16B3748', tables: ['public.t'], transport, signal: new AbortController().signal, onReconnect: (i) => console.log(i.delayMs) });
  try {
    for await (const c of sub) {
      const ch: Change = c;
      console.log(ch.type, ch.commit?.endLsn, sub.position);
    }
  } catch (e) {
    if (e instanceof ResyncRequiredError) console.log(e.position);
  }
  const n: bigint = parseLsn('16/B374D848');
  console.log(formatLsn(n));
}
void main;
