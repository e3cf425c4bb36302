/**
 * The console's one connection to the server, over `/ws` on the page's own origin, through the
 * browser client. It keeps the status line in the header true: connecting, connected,
 * reconnecting (the client reconnects by itself), or failed — with the reason.
 */
import { connect, type KvClient } from '../../browser/index.js';
import { byId, errorText } from './dom.js';

/** Where `/ws` is for a page served at `location`. */
export function webSocketUrl(location: Location): string {
  return `${location.protocol === 'https:' ? 'wss:' : 'ws:'}//${location.host}/ws`;
}

const RETRY_MS = 2000;

export class Connection {
  readonly url: string;
  readonly #status = byId('connection');
  readonly #text = byId('connection-text');
  readonly #listeners: ((kv: KvClient) => void)[] = [];
  #client: KvClient | undefined;
  #ready: Promise<KvClient>;

  constructor(url: string) {
    this.url = url;
    this.#ready = this.#open();
  }

  /** The client once connected; commands sent while it reconnects wait in its queue. */
  client(): Promise<KvClient> {
    return this.#ready;
  }

  /** Runs `listener` on each (re)connection, and now if connected already. */
  onConnect(listener: (kv: KvClient) => void): void {
    this.#listeners.push(listener);
    if (this.#client?.state === 'connected') listener(this.#client);
  }

  async #open(): Promise<KvClient> {
    for (let attempt = 1; ; attempt++) {
      this.#show('connecting', attempt === 1 ? `Connecting to ${this.url}…` : `Connecting to ${this.url} (attempt ${attempt})…`);
      try {
        const kv = await connect({ url: this.url });
        this.#adopt(kv);
        return kv;
      } catch (err) {
        this.#show('closed', `Cannot connect to ${this.url}: ${errorText(err)} — retrying`);
        await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
      }
    }
  }

  #adopt(kv: KvClient): void {
    this.#client = kv;
    const connected = (): void => {
      this.#show('connected', `Connected · ${this.url}`);
      for (const listener of this.#listeners) listener(kv);
    };
    kv.on('connect', connected);
    kv.on('disconnect', (err) => this.#show('reconnecting', `Connection lost: ${errorText(err)}`));
    kv.on('reconnecting', ({ attempt, delayMs }) => this.#show('reconnecting', `Reconnecting (attempt ${attempt}, in ${Math.round(delayMs)} ms)…`));
    kv.on('close', () => this.#show('closed', 'Connection closed'));
    connected();
  }

  #show(state: 'connecting' | 'connected' | 'reconnecting' | 'closed', text: string): void {
    this.#status.dataset.state = state;
    this.#text.textContent = text;
  }
}
