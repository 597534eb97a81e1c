/**
 * The client-API calls the peers bench makes of either server, over one keep-alive client:
 * each throws with the server's name and answer when a call does not succeed.
 */
import { httpClient, jsonOf, type HttpClient, type HttpResult } from '../http.js';

export const C = '/_matrix/client/v3';
export const r = encodeURIComponent;

export interface Account {
  userId: string;
  token: string;
}

export type PeerName = 'Commons' | 'Synapse';

export interface PeerClient {
  name: PeerName;
  url: string;
  http: HttpClient;
  /** The answer of a GET as JSON, or an error naming what failed. */
  get<T>(what: string, path: string, token: string): Promise<T>;
  /** The same, with the milliseconds from sending to the last byte (parsing not counted). */
  getTimed<T>(what: string, path: string, token: string): Promise<{ body: T; ms: number }>;
  post<T>(what: string, path: string, body: unknown, token?: string): Promise<T>;
  put(what: string, path: string, body: unknown, token: string): Promise<void>;
  close(): void;
}

function checked<T>(name: PeerName, what: string, result: HttpResult): T {
  if (result.status !== 200)
    throw new Error(`${name} ${what}: ${result.status} ${result.body.toString().slice(0, 300)}`);
  return jsonOf<T>(result) as T;
}

export function peerClient(name: PeerName, url: string, sockets = 32): PeerClient {
  const http = httpClient(url, sockets);
  return {
    name,
    url,
    http,
    get: async (what, path, token) => checked(name, what, await http.get(path, token)),
    async getTimed(what, path, token) {
      const result = await http.get(path, token);
      return { body: checked(name, what, result), ms: result.ms };
    },
    post: async (what, path, body, token) =>
      checked(name, what, await http.post(path, body, token)),
    async put(what, path, body, token) {
      checked(name, what, await http.put(path, body, token));
    },
    close: () => http.close(),
  };
}

/** Runs `work(i)` for i in [0, count) with `parallel` calls at a time. */
export async function inParallel(
  count: number,
  parallel: number,
  work: (i: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(parallel, count) }, async () => {
      for (let i = next++; i < count; i = next++) await work(i);
    }),
  );
}
