/**
 * A small keep-alive HTTP client for the sequential parts of the benchmark (walks, the
 * workaround, big responses): each call reports the time to the last byte.
 */
import { Agent, request } from 'node:http';

export interface HttpResult {
  status: number;
  body: Buffer;
  /** Milliseconds from sending the request to the last byte of the response. */
  ms: number;
  contentType: string;
}

export interface HttpClient {
  readonly base: string;
  get(path: string, token?: string): Promise<HttpResult>;
  post(path: string, body: unknown, token?: string): Promise<HttpResult>;
  put(path: string, body: unknown, token?: string): Promise<HttpResult>;
  close(): void;
}

export function httpClient(base: string, maxSockets = 16): HttpClient {
  const agent = new Agent({ keepAlive: true, maxSockets });
  const url = new URL(base);
  const send = (method: string, path: string, token?: string, body?: unknown) =>
    new Promise<HttpResult>((resolve, reject) => {
      const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
      const headers: Record<string, string | number> = {};
      if (token) headers.Authorization = `Bearer ${token}`;
      if (payload) {
        headers['Content-Type'] = 'application/json';
        headers['Content-Length'] = payload.length;
      }
      const started = performance.now();
      const req = request(
        { host: url.hostname, port: url.port, path, method, headers, agent },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.on('end', () =>
            resolve({
              status: res.statusCode ?? 0,
              body: Buffer.concat(chunks),
              ms: performance.now() - started,
              contentType: String(res.headers['content-type'] ?? ''),
            }),
          );
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end(payload);
    });
  return {
    base,
    get: (path, token) => send('GET', path, token),
    post: (path, body, token) => send('POST', path, token, body),
    put: (path, body, token) => send('PUT', path, token, body),
    close: () => agent.destroy(),
  };
}

/** The JSON body of a response, or undefined when it is not JSON. */
export function jsonOf<T = Record<string, unknown>>(result: HttpResult): T | undefined {
  try {
    return JSON.parse(result.body.toString('utf8')) as T;
  } catch {
    return undefined;
  }
}

/** "404 M_UNRECOGNIZED: Unrecognized request" for a failed response. */
export function describeFailure(result: HttpResult): string {
  const body = jsonOf<{ errcode?: string; error?: string }>(result);
  const detail = body?.errcode
    ? `${body.errcode}: ${body.error ?? ''}`
    : result.body.toString('utf8').slice(0, 120);
  return `HTTP ${result.status} ${detail}`.trim();
}
