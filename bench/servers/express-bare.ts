/** Bare Express 5: `GET /hello` answering a small JSON, no guard. The baseline of every Express run. */
import { expressApp, hello } from '../lib/express-app.js';
import { startBenchServer } from '../lib/server-kit.js';
import { helloSpec } from '../lib/smoke.js';

await startBenchServer(() => {
  const app = expressApp();
  app.get('/hello', hello);
  return {
    listener: app,
    spec: helloSpec(undefined),
  };
});
