/**
 * A TLS-terminating proxy in front of a federating test server (same certificate, trusting
 * the test CA), to make a destination down or slow on purpose: `pass` forwards both ways;
 * `down` drops every connection at once; `hold` forwards requests but keeps the answers back
 * (the server has the request, has acted on it and has answered; the caller never hears of it)
 * until the mode changes.
 */
import { connect, createServer, type Server, type TLSSocket } from 'node:tls';
import type { Socket } from 'node:net';
import type { TestCa } from './federation.js';

export type ProxyMode = 'pass' | 'down' | 'hold';

export class HoldingProxy {
  private mode: ProxyMode = 'pass';
  /** Requests whose answers were held back (connections accepted in `hold`). */
  held = 0;
  private server: Server | null = null;
  private readonly sockets = new Set<Socket | TLSSocket>();

  constructor(
    private readonly ca: TestCa,
    private readonly listenPort: number,
    private readonly targetPort: number,
  ) {}

  async start(): Promise<void> {
    const server = createServer({ cert: this.ca.certPem, key: this.ca.keyPem }, (client) =>
      this.accept(client),
    );
    server.on('tlsClientError', () => undefined);
    // Down: connections are cut before TLS.
    server.on('connection', (socket: Socket) => {
      if (this.mode === 'down') socket.destroy();
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.listenPort, '127.0.0.1', () => resolve());
    });
    this.server = server;
  }

  /** Sets the mode; open connections are cut so that the next ones follow it. */
  setMode(mode: ProxyMode): void {
    this.mode = mode;
    for (const socket of this.sockets) socket.destroy();
    this.sockets.clear();
  }

  async stop(): Promise<void> {
    this.setMode('down');
    const server = this.server;
    this.server = null;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private accept(client: TLSSocket): void {
    const holding = this.mode === 'hold';
    if (holding) this.held++;
    const upstream = connect({
      host: '127.0.0.1',
      port: this.targetPort,
      ca: this.ca.caPem,
      servername: 'localhost',
    });
    this.sockets.add(client);
    this.sockets.add(upstream);
    const close = () => {
      client.destroy();
      upstream.destroy();
      this.sockets.delete(client);
      this.sockets.delete(upstream);
    };
    client.on('error', close).on('close', close);
    upstream.on('error', close).on('close', close);
    client.pipe(upstream);
    if (holding) upstream.on('data', () => undefined);
    else upstream.pipe(client);
  }
}
