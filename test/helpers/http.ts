import http from 'node:http';
import type { Socket } from 'node:net';

export interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
  /** Parsed JSON body, or undefined. */
  json: any; // eslint-disable-line @typescript-eslint/no-explicit-any
}

/**
 * A raw HTTP request on loopback. `headers` is a flat [name, value, name, value…] list so tests can
 * send duplicate headers (fetch() would merge them).
 */
export function request(
  base: string,
  method: string,
  path: string,
  options: { headers?: string[]; body?: string | Buffer; localAddress?: string } = {},
): Promise<RawResponse> {
  const url = new URL(path, base);
  const headers = options.headers ?? [];
  // With a raw header list Node adds no Host header of its own (HTTP/1.1 requires one).
  const withHost = headers.some((h, i) => i % 2 === 0 && h.toLowerCase() === 'host')
    ? headers
    : ['host', url.host, ...headers];
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        method,
        host: url.hostname,
        port: url.port,
        path: url.pathname + url.search,
        headers: withHost,
        localAddress: options.localAddress,
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: unknown;
          try {
            json = JSON.parse(text);
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    if (options.body !== undefined) req.write(options.body);
    req.end();
  });
}

/** POST a JSON body. */
export function postJson(base: string, path: string, body: unknown, headers: string[] = []) {
  const text = JSON.stringify(body);
  return request(base, 'POST', path, {
    headers: [
      'content-type',
      'application/json',
      'content-length',
      String(Buffer.byteLength(text)),
      ...headers,
    ],
    body: text,
  });
}

/** POST a form-urlencoded body. */
export function postForm(base: string, path: string, fields: Record<string, string>, headers: string[] = []) {
  const text = new URLSearchParams(fields).toString();
  return request(base, 'POST', path, {
    headers: [
      'content-type',
      'application/x-www-form-urlencoded',
      'content-length',
      String(Buffer.byteLength(text)),
      ...headers,
    ],
    body: text,
  });
}

/** GET with an optional bearer token. */
export function getWith(base: string, path: string, headers: string[] = []) {
  return request(base, 'GET', path, { headers });
}

/**
 * A `clientError` answer for a test app's Node server, for requests Node refuses before any
 * framework sees them (headers over `maxHeaderSize`: 431; unparsable: 400). Node's own fallback
 * answers with no Content-Length and destroys the socket while the rest of the request is unread,
 * so the kernel resets the connection; since Node 24 the client reports that reset as
 * `ECONNRESET` instead of the response it already received. This answer is delimited
 * (Content-Length), then half-closes and reads the rest of the request before closing (the staged
 * close of RFC 9112 section 9.6), so every client version sees the status. Fastify's own handler
 * sends a delimited answer too but destroys the socket after it, which Deno's server turns into a
 * reset the client reports.
 */
export function answerClientErrors(server: http.Server): http.Server {
  return server.on('clientError', answerClientError);
}

/** The `clientError` listener of {@link answerClientErrors}, also Fastify's `clientErrorHandler`. */
export function answerClientError(error: NodeJS.ErrnoException, socket: Socket): void {
  if (error.code === 'ECONNRESET' || !socket.writable) return void socket.destroy();
  const status = error.code === 'HPE_HEADER_OVERFLOW' ? 431 : 400;
  const body = JSON.stringify({ error: status === 431 ? 'headers_too_large' : 'bad_request' });
  socket.end(
    `HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\nconnection: close\r\n` +
      `content-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
  socket.on('error', () => {}).resume();
  setTimeout(() => socket.destroy(), 2000).unref();
}
