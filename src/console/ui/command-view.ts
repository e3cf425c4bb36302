/**
 * The command line: runs any command and shows the whole response — status, message, every
 * value and pair with its type. Earlier lines come back with the arrow keys, across visits.
 */
import { COMMANDS, parseCommandLine, showResponse, type ShownValue } from '../command-line.js';
import type { Connection } from './connection.js';
import { byId, el, errorText, typeBadge } from './dom.js';
import type { PubSubView } from './pubsub-view.js';

const HISTORY_KEY = 'protokv.console.history';
const HISTORY_LIMIT = 200;
/** Entries kept in the output; older ones are removed so a long session stays light. */
const OUTPUT_LIMIT = 300;

export class CommandView {
  readonly #connection: Connection;
  readonly #pubsub: PubSubView;
  readonly #output = byId('cli-output');
  readonly #input = byId<HTMLInputElement>('cli-input');
  readonly #history: string[];
  /** Position while browsing history; `history.length` means the line being typed. */
  #cursor: number;
  #draft = '';

  constructor(connection: Connection, pubsub: PubSubView) {
    this.#connection = connection;
    this.#pubsub = pubsub;
    this.#history = loadHistory();
    this.#cursor = this.#history.length;
    byId<HTMLFormElement>('cli-form').addEventListener('submit', (event) => {
      event.preventDefault();
      const line = this.#input.value;
      this.#input.value = '';
      void this.run(line);
    });
    byId('cli-clear').addEventListener('click', () => this.#output.replaceChildren());
    this.#input.addEventListener('keydown', (event) => this.#onKey(event));
  }

  /** Puts the cursor in the command line. */
  focus(): void {
    this.#input.focus();
  }

  /** Runs one line and shows what it did. */
  async run(line: string): Promise<void> {
    if (line.trim() === '') return;
    this.#remember(line);
    const entry = el('div', { class: 'cli-entry' }, el('div', { class: 'cli-command' }, line));
    this.#append(entry);
    let parsed;
    try {
      parsed = parseCommandLine(line);
    } catch (err) {
      entry.append(statusLine(false, errorText(err)));
      return;
    }
    switch (parsed.kind) {
      case 'empty':
        return;
      case 'clear':
        this.#output.replaceChildren();
        return;
      case 'help':
        entry.append(el('div', { class: 'cli-help' }, helpText()));
        return;
      case 'subscribe':
        try {
          const sub = await this.#pubsub.subscribe(parsed.topic);
          entry.append(statusLine(true, `Subscribed to ${parsed.topic} (id ${sub.id}); its messages show under Pub/Sub`));
        } catch (err) {
          entry.append(statusLine(false, `SUBSCRIBE failed: ${errorText(err)}`));
        }
        return;
      case 'request': {
        const started = performance.now();
        try {
          const kv = await this.#connection.client();
          const response = await kv.send(parsed.request);
          const ms = performance.now() - started;
          const shown = showResponse(response);
          const counts = [
            shown.values.length > 0 ? `${shown.values.length} ${shown.values.length === 1 ? 'value' : 'values'}` : '',
            shown.pairs.length > 0 ? `${shown.pairs.length} ${shown.pairs.length === 1 ? 'pair' : 'pairs'}` : '',
          ].filter(Boolean);
          const summary = shown.ok ? ['OK', ...counts].join(' · ') : shown.message;
          entry.append(statusLine(shown.ok, `${shown.status} · ${summary} · ${ms < 10 ? ms.toFixed(1) : Math.round(ms)} ms`));
          if (shown.values.length > 0) entry.append(valueList(shown.values, false));
          if (shown.pairs.length > 0) entry.append(valueList(shown.pairs, true));
        } catch (err) {
          entry.append(statusLine(false, errorText(err)));
        }
        this.#output.scrollTop = this.#output.scrollHeight;
        return;
      }
    }
  }

  #append(entry: HTMLElement): void {
    this.#output.append(entry);
    while (this.#output.childElementCount > OUTPUT_LIMIT) this.#output.firstElementChild?.remove();
    this.#output.scrollTop = this.#output.scrollHeight;
  }

  #onKey(event: KeyboardEvent): void {
    if (event.key !== 'ArrowUp' && event.key !== 'ArrowDown') return;
    if (this.#history.length === 0) return;
    event.preventDefault();
    if (this.#cursor === this.#history.length) this.#draft = this.#input.value;
    this.#cursor = Math.max(0, Math.min(this.#history.length, this.#cursor + (event.key === 'ArrowUp' ? -1 : 1)));
    this.#input.value = this.#cursor === this.#history.length ? this.#draft : this.#history[this.#cursor];
    const end = this.#input.value.length;
    this.#input.setSelectionRange(end, end);
  }

  #remember(line: string): void {
    if (this.#history.at(-1) !== line) this.#history.push(line);
    if (this.#history.length > HISTORY_LIMIT) this.#history.splice(0, this.#history.length - HISTORY_LIMIT);
    this.#cursor = this.#history.length;
    try {
      localStorage.setItem(HISTORY_KEY, JSON.stringify(this.#history));
    } catch {
      // Storage full or disabled: history still works for this visit.
    }
  }
}

function loadHistory(): string[] {
  try {
    const stored: unknown = JSON.parse(localStorage.getItem(HISTORY_KEY) ?? '[]');
    return Array.isArray(stored) ? stored.filter((x): x is string => typeof x === 'string').slice(-HISTORY_LIMIT) : [];
  } catch {
    return [];
  }
}

function statusLine(ok: boolean, text: string): HTMLElement {
  return el('div', { class: ok ? 'cli-status' : 'cli-status error', role: ok ? undefined : 'alert' }, text);
}

function valueList(items: ShownValue[], pairs: boolean): HTMLElement {
  return el(
    'ol',
    { class: 'cli-values', 'aria-label': pairs ? 'Pairs' : 'Values' },
    ...items.map((item, i) =>
      el(
        'li',
        {},
        el('span', { class: 'index' }, `${i + 1})`),
        pairs ? el('span', { class: 'key' }, `${JSON.stringify(item.key)} =>`) : null,
        typeBadge(item.type),
        el('span', { class: 'text' }, item.text),
      ),
    ),
  );
}

function helpText(): string {
  const width = Math.max(...Object.values(COMMANDS).map((c) => c.usage.length));
  return [
    ...Object.values(COMMANDS).map((c) => `${c.usage.padEnd(width + 2)}${c.summary}`),
    '',
    'Words with spaces go in "double" (JSON escapes) or \'single\' quotes. Values are text unless',
    'typed: int:42  float:1.5  bool:true  bin:AQID (base64)  null (the empty value).',
  ].join('\n');
}
