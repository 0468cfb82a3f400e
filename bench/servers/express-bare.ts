/** Bare Express 5: `GET /hello` answering a small JSON, no guard. The baseline of every Express run. */
import { expressApp, hello } from '../lib/express-app.js';
import { startBenchServer } from '../lib/server-kit.js';

await startBenchServer(() => {
  const app = expressApp();
  app.get('/hello', hello);
  return {
    listener: app,
    spec: {
      request: { method: 'GET', path: '/hello' },
      smoke: [
        { name: 'route', request: { method: 'GET', path: '/hello' }, status: 200, bodyIncludes: 'hello' },
        { name: 'unknown route', request: { method: 'GET', path: '/nope' }, status: 404 },
      ],
    },
  };
});
