// Serves the demo page (and the package build) on 127.0.0.1, forwarding /v1/* to a relay so the
// page talks to it same-origin:  node demo/serve.mjs [--relay http://127.0.0.1:7400] [--port 8080]
import { serve, proxyTo } from '../test/serve.mjs';

const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : dflt;
};
const relay = arg('relay', 'http://127.0.0.1:7400');
const s = await serve({ relay: proxyTo(relay), port: Number(arg('port', 8080)) });
console.log(`demo: ${s.url}/demo/index.html?autoconnect  (relay ${relay})`);
