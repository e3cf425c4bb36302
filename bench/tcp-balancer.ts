/**
 * A minimal round-robin TCP load balancer, for local examples and benchmarks of several protokv
 * nodes (a stand-in for HAProxy, nginx or a cloud balancer): each accepted connection is piped
 * whole to the next backend in turn; a backend that refuses the connection is skipped.
 *
 * As a script: `node dist/bench/tcp-balancer.js LISTEN_PORT HOST:PORT [HOST:PORT…]`.
 */
import net from 'node:net';
import { fileURLToPath } from 'node:url';

export interface Backend {
  host: string;
  port: number;
}

export class TcpBalancer {
  readonly #server: net.Server;
  readonly #backends: Backend[];
  readonly #sockets = new Set<net.Socket>();
  #next = 0;

  private constructor(server: net.Server, backends: Backend[]) {
    this.#server = server;
    this.#backends = backends;
  }

  /** Listens on `host:port` (port 0: any free port) in front of `backends`. */
  static async listen(backends: Backend[], port = 0, host = '127.0.0.1'): Promise<TcpBalancer> {
    if (backends.length === 0) throw new Error('a balancer needs at least one backend');
    const server = net.createServer();
    const balancer = new TcpBalancer(server, backends);
    server.on('connection', (client) => balancer.#accept(client));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve());
    });
    return balancer;
  }

  get port(): number {
    return (this.#server.address() as net.AddressInfo).port;
  }

  /** Stops accepting and closes every proxied connection. */
  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    for (const socket of this.#sockets) socket.destroy();
    await closed;
  }

  #accept(client: net.Socket, attempt = 0): void {
    const backend = this.#backends[this.#next++ % this.#backends.length];
    const upstream = net.connect(backend);
    let connected = false;
    this.#track(client);
    this.#track(upstream);
    client.pause();
    upstream.once('connect', () => {
      connected = true;
      client.pipe(upstream);
      upstream.pipe(client);
      client.resume();
    });
    upstream.once('error', () => {
      // A backend that refuses: try the next one, each at most once.
      if (!connected && attempt + 1 < this.#backends.length && !client.destroyed) this.#accept(client, attempt + 1);
      else client.destroy();
    });
    upstream.once('close', () => {
      if (connected) client.destroy();
    });
    client.once('error', () => upstream.destroy());
    client.once('close', () => upstream.destroy());
  }

  #track(socket: net.Socket): void {
    this.#sockets.add(socket);
    socket.once('close', () => this.#sockets.delete(socket));
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [port, ...targets] = process.argv.slice(2);
  const backends = targets.map((t) => {
    const colon = t.lastIndexOf(':');
    return { host: t.slice(0, colon), port: Number(t.slice(colon + 1)) };
  });
  if (port === undefined || backends.length === 0 || backends.some((b) => !(b.port > 0))) {
    process.stderr.write('usage: node dist/bench/tcp-balancer.js LISTEN_PORT HOST:PORT [HOST:PORT…]\n');
    process.exit(2);
  }
  const balancer = await TcpBalancer.listen(backends, Number(port));
  process.stdout.write(`balancing 127.0.0.1:${balancer.port} over ${targets.join(', ')}\n`);
}
