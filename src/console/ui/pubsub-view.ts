/**
 * Pub/Sub: subscribe to topics and watch their messages arrive live (pause, clear), and publish
 * typed values to any topic.
 */
import type { KvValue, Subscription } from '../../browser/index.js';
import { displayValue, parseValueText, typeOf, VALUE_TYPES, type ValueType } from '../value-text.js';
import type { Connection } from './connection.js';
import { byId, el, errorText, formatCount, report, reportError, typeBadge } from './dom.js';

/** Rows kept in the message table; older ones go, so a busy topic cannot fill the page. */
const MESSAGE_LIMIT = 500;

interface Message {
  at: Date;
  topic: string;
  values: KvValue[];
}

const time = new Intl.DateTimeFormat('en-GB', { hour: '2-digit', minute: '2-digit', second: '2-digit', fractionalSecondDigits: 3 });

export class PubSubView {
  readonly #connection: Connection;
  readonly #chips = byId<HTMLUListElement>('subscriptions');
  readonly #status = byId('pubsub-status');
  readonly #messages = byId<HTMLTableSectionElement>('messages');
  readonly #empty = byId('messages-empty');
  readonly #pause = byId<HTMLButtonElement>('messages-pause');
  readonly #publishValues = byId<HTMLOListElement>('publish-values');
  readonly #publishStatus = byId('publish-status');
  #paused = false;
  /** Messages that arrived while paused, shown on resume. */
  #held: Message[] = [];
  #received = 0;

  constructor(connection: Connection) {
    this.#connection = connection;
    byId<HTMLFormElement>('subscribe-form').addEventListener('submit', (event) => {
      event.preventDefault();
      const input = byId<HTMLInputElement>('subscribe-topic');
      const topic = input.value;
      void this.subscribe(topic).then(
        () => (input.value = ''),
        (err: unknown) => reportError(this.#status, `Could not subscribe to ${topic}`, err),
      );
    });
    this.#pause.addEventListener('click', () => this.#togglePause());
    byId('messages-clear').addEventListener('click', () => {
      this.#messages.replaceChildren();
      this.#held = [];
      this.#received = 0;
      this.#empty.hidden = false;
      this.#showCounts();
    });
    byId('publish-add').addEventListener('click', () => this.#addValueRow('string', '').querySelector('input')?.focus());
    byId<HTMLFormElement>('publish-form').addEventListener('submit', (event) => {
      event.preventDefault();
      void this.#publish();
    });
    this.#addValueRow('string', '');
  }

  /** Subscribes to `topic`; its messages show here until it ends. Rejects when the server refuses. */
  async subscribe(topic: string): Promise<Subscription> {
    const kv = await this.#connection.client();
    const sub = await kv.subscribe(topic);
    const stop = el('button', { type: 'button', 'aria-label': `Unsubscribe from ${topic}` }, 'Unsubscribe');
    const chip = el('li', {}, el('span', { class: 'mono' }, topic), el('span', {}, `#${sub.id}`), stop);
    stop.addEventListener('click', () => void sub.unsubscribe());
    this.#chips.append(chip);
    report(this.#status, 'ok', `Subscribed to ${topic} (id ${sub.id})`);
    void (async () => {
      try {
        for await (const values of sub) this.#receive({ at: new Date(), topic, values });
        report(this.#status, 'note', `Subscription to ${topic} ended`);
      } catch (err) {
        reportError(this.#status, `Subscription to ${topic} ended abnormally`, err);
      } finally {
        chip.remove();
      }
    })();
    return sub;
  }

  #receive(message: Message): void {
    this.#received++;
    if (this.#paused) {
      this.#held.push(message);
      if (this.#held.length > MESSAGE_LIMIT) this.#held.shift();
      this.#showCounts();
      return;
    }
    this.#render([message]);
  }

  #render(messages: Message[]): void {
    if (messages.length === 0) return;
    this.#empty.hidden = true;
    // Newest first.
    this.#messages.prepend(...messages.reverse().map(messageRow));
    while (this.#messages.rows.length > MESSAGE_LIMIT) this.#messages.lastElementChild?.remove();
  }

  #togglePause(): void {
    this.#paused = !this.#paused;
    this.#pause.setAttribute('aria-pressed', String(this.#paused));
    this.#pause.textContent = this.#paused ? 'Resume' : 'Pause';
    if (!this.#paused) {
      this.#render(this.#held);
      this.#held = [];
    }
    this.#showCounts();
  }

  #showCounts(): void {
    if (this.#paused) report(this.#status, 'note', `Paused: ${formatCount(this.#held.length)} new ${this.#held.length === 1 ? 'message' : 'messages'} held`);
    else if (this.#status.textContent?.startsWith('Paused')) report(this.#status, 'note', `${formatCount(this.#received)} received`);
  }

  #addValueRow(type: ValueType, text: string): HTMLLIElement {
    const index = this.#publishValues.childElementCount + 1;
    const select = el('select', { 'aria-label': `Type of value ${index}` }, ...VALUE_TYPES.map((t) => el('option', { value: t, selected: t === type }, t)));
    const input = el('input', { 'aria-label': `Value ${index}`, autocomplete: 'off', spellcheck: 'false' });
    input.value = text;
    const remove = el('button', { type: 'button', class: 'link danger-link', 'aria-label': `Remove value ${index}` }, 'Remove');
    const row = el('li', {}, select, input, remove);
    const sync = (): void => {
      input.disabled = select.value === 'empty';
      input.placeholder = select.value === 'bool' ? 'true or false' : select.value === 'binary' ? 'base64' : '';
    };
    select.addEventListener('change', sync);
    remove.addEventListener('click', () => row.remove());
    sync();
    this.#publishValues.append(row);
    return row;
  }

  async #publish(): Promise<void> {
    const topic = byId<HTMLInputElement>('publish-topic').value;
    const values: KvValue[] = [];
    for (const [i, row] of [...this.#publishValues.children].entries()) {
      const type = row.querySelector('select')!.value as ValueType;
      try {
        values.push(parseValueText(type, row.querySelector('input')!.value));
      } catch (err) {
        report(this.#publishStatus, 'error', `Value ${i + 1}: ${errorText(err)}`);
        row.querySelector('input')!.focus();
        return;
      }
    }
    try {
      const kv = await this.#connection.client();
      await kv.publish(topic, ...values);
      report(this.#publishStatus, 'ok', `Published ${values.length} ${values.length === 1 ? 'value' : 'values'} to ${topic === '' ? 'the empty topic' : topic}`);
    } catch (err) {
      reportError(this.#publishStatus, 'Could not publish', err);
    }
  }
}

function messageRow(message: Message): HTMLTableRowElement {
  const values =
    message.values.length === 0
      ? el('span', { class: 'unnamed' }, 'no values')
      : el(
          'div',
          { class: 'message-values' },
          ...message.values.map((v) => {
            const type = typeOf(v);
            return el('span', { class: 'v' }, typeBadge(type), type === 'empty' ? '' : displayValue(v, 300));
          }),
        );
  return el('tr', {}, el('td', {}, time.format(message.at)), el('td', {}, message.topic), el('td', {}, values));
}
