import http from 'node:http';
import type { AddressInfo } from 'node:net';

/** A loopback server that streams a huge body of zeros and counts what it hands to the socket. */
export interface FloodServer {
  /** `http://127.0.0.1:<port>`. */
  readonly url: string;
  /** Bytes handed to `res.write` so far (kernel buffers included), over every request. */
  sent(): number;
  /** Responses that ran to their end (the client read everything). */
  completed(): number;
  /** Requests received. */
  requests(): number;
  close(): Promise<void>;
}

/**
 * Answer every GET with 200 and `bytes` zero bytes, never allocating more than one 64 KiB chunk.
 * A path containing `announce` sends `content-length: bytes`; any other path is chunked.
 */
export async function startFloodServer(bytes: number): Promise<FloodServer> {
  let sent = 0;
  let completed = 0;
  let requests = 0;
  const zeros = Buffer.alloc(64 * 1024);
  const server = http.createServer((req, res) => {
    requests++;
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (req.url?.includes('announce')) headers['content-length'] = String(bytes);
    res.writeHead(200, headers);
    res.on('error', () => {});
    let written = 0;
    const pump = () => {
      while (written < bytes) {
        if (res.destroyed) return;
        const chunk = zeros.subarray(0, Math.min(zeros.length, bytes - written));
        written += chunk.length;
        sent += chunk.length;
        if (!res.write(chunk)) return void res.once('drain', pump);
      }
      res.end(() => completed++);
    };
    pump();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    sent: () => sent,
    completed: () => completed,
    requests: () => requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
