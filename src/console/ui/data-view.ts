/**
 * The Data view: the list of tables (paged `TABLES`, with key counts) and one table's keys
 * (paged `HSCAN`), each value shown by type, with a typed editor to set keys, a delete button
 * per key, and dropping the whole table behind a confirmation.
 */
import type { KvValue } from '../../browser/index.js';
import { displayValue, parseValueText, typeOf, valueToText, type ValueType } from '../value-text.js';
import type { Connection } from './connection.js';
import { byId, el, errorText, formatCount, report, reportError, tableName, typeBadge } from './dom.js';
import { dropTable, scanPage, tableSize, tablesPage } from './pages.js';

const TABLES_PAGE = 100;

export class DataView {
  readonly #connection: Connection;
  // Tables list
  readonly #tablesList = byId<HTMLUListElement>('tables-list');
  readonly #tablesStatus = byId('tables-status');
  readonly #tablesMore = byId<HTMLButtonElement>('tables-more');
  #tablesNext = '';
  // Table view
  readonly #heading = byId('table-heading');
  readonly #count = byId('table-count');
  readonly #status = byId('table-status');
  readonly #rows = byId<HTMLTableElement>('keys').tBodies[0];
  readonly #caption = byId('keys-caption');
  readonly #emptyNote = byId('keys-empty');
  readonly #pageInfo = byId('page-info');
  readonly #pageSize = byId<HTMLSelectElement>('page-size');
  readonly #buttons = {
    refresh: byId<HTMLButtonElement>('table-refresh'),
    drop: byId<HTMLButtonElement>('table-drop'),
    first: byId<HTMLButtonElement>('page-first'),
    prev: byId<HTMLButtonElement>('page-prev'),
    next: byId<HTMLButtonElement>('page-next'),
  };
  readonly #editor = {
    form: byId<HTMLFormElement>('editor'),
    key: byId<HTMLInputElement>('editor-key'),
    type: byId<HTMLSelectElement>('editor-type'),
    value: byId<HTMLTextAreaElement>('editor-value'),
    bool: byId<HTMLSelectElement>('editor-bool'),
    submit: byId<HTMLButtonElement>('editor-submit'),
  };
  #table: string | undefined;
  /** The cursor of each page visited so far; `#cursors[#pageIndex]` is the current page's. */
  #cursors = [''];
  #pageIndex = 0;
  #next = '';
  #size = 0n;
  /** Bumped on each load, so a slow answer for a page no longer shown is ignored. */
  #loadSeq = 0;

  constructor(connection: Connection) {
    this.#connection = connection;
    byId('tables-refresh').addEventListener('click', () => void this.refreshTables());
    this.#tablesMore.addEventListener('click', () => void this.#loadTables(false));
    byId<HTMLFormElement>('open-table').addEventListener('submit', (event) => {
      event.preventDefault();
      const input = byId<HTMLInputElement>('open-table-name');
      this.open(input.value);
      input.value = '';
    });
    this.#buttons.refresh.addEventListener('click', () => void this.#loadPage());
    this.#buttons.first.addEventListener('click', () => this.#goTo(0));
    this.#buttons.prev.addEventListener('click', () => this.#goTo(this.#pageIndex - 1));
    this.#buttons.next.addEventListener('click', () => {
      if (this.#cursors.length === this.#pageIndex + 1) this.#cursors.push(this.#next);
      this.#goTo(this.#pageIndex + 1);
    });
    this.#pageSize.addEventListener('change', () => {
      this.#cursors = [''];
      this.#goTo(0);
    });
    this.#buttons.drop.addEventListener('click', () => this.#confirmDrop());
    this.#editor.type.addEventListener('change', () => this.#syncEditorType());
    this.#editor.form.addEventListener('submit', (event) => {
      event.preventDefault();
      void this.#submitEditor();
    });
    connection.onConnect(() => void this.refreshTables());
  }

  /** Reloads the list of tables from its first page. */
  async refreshTables(): Promise<void> {
    await this.#loadTables(true);
  }

  /** Shows `table` (which may not exist yet: it is created by its first key). */
  open(table: string): void {
    this.#table = table;
    this.#cursors = [''];
    this.#heading.replaceChildren('Table ', el('span', { class: 'mono' }, tableName(table)));
    this.#caption.textContent = `Keys of table ${table}`;
    for (const b of [this.#buttons.refresh, this.#buttons.drop]) b.disabled = false;
    for (const input of [this.#editor.key, this.#editor.type, this.#editor.value, this.#editor.bool, this.#editor.submit]) input.disabled = false;
    this.#markCurrentTable();
    report(this.#status, 'note', '');
    this.#goTo(0);
  }

  // --- tables list ---

  async #loadTables(reset: boolean): Promise<void> {
    const cursor = reset ? '' : this.#tablesNext;
    try {
      const kv = await this.#connection.client();
      const page = await tablesPage(kv, cursor, TABLES_PAGE);
      if (reset) this.#tablesList.replaceChildren();
      for (const [name, count] of page.pairs) this.#tablesList.append(this.#tableItem(name, count));
      this.#tablesNext = page.next;
      this.#tablesMore.hidden = page.next === '';
      const shown = this.#tablesList.childElementCount;
      report(this.#tablesStatus, 'note', shown === 0 ? 'No tables yet: open one by name and set a key to create it.' : '');
      this.#markCurrentTable();
    } catch (err) {
      reportError(this.#tablesStatus, 'Could not list the tables', err);
    }
  }

  #tableItem(name: string, count: KvValue): HTMLLIElement {
    const n = typeof count === 'bigint' ? count : 0n;
    const button = el(
      'button',
      { type: 'button', 'data-table': name, 'aria-label': `${name === '' ? '(empty name)' : name}, ${formatCount(n)} ${n === 1n ? 'key' : 'keys'}` },
      el('span', { class: 'name' }, tableName(name)),
      el('span', { class: 'count' }, formatCount(n)),
    );
    button.addEventListener('click', () => this.open(name));
    return el('li', {}, button);
  }

  #markCurrentTable(): void {
    for (const b of this.#tablesList.querySelectorAll<HTMLButtonElement>('button[data-table]')) {
      if (b.dataset.table === this.#table) b.setAttribute('aria-current', 'true');
      else b.removeAttribute('aria-current');
    }
  }

  // --- one table ---

  #goTo(index: number): void {
    this.#pageIndex = Math.max(0, Math.min(index, this.#cursors.length - 1));
    void this.#loadPage();
  }

  async #loadPage(): Promise<void> {
    const table = this.#table;
    if (table === undefined) return;
    const seq = ++this.#loadSeq;
    const count = Number(this.#pageSize.value);
    try {
      const kv = await this.#connection.client();
      // Pipelined: both requests leave together.
      const [page, size] = await Promise.all([scanPage(kv, table, this.#cursors[this.#pageIndex], count), tableSize(kv, table)]);
      if (seq !== this.#loadSeq) return;
      this.#next = page.next;
      this.#size = size;
      this.#rows.replaceChildren(...page.pairs.map(([key, value]) => this.#row(key, value)));
      this.#renderPaging(page.pairs.length, count);
    } catch (err) {
      if (seq === this.#loadSeq) reportError(this.#status, `Could not read table ${table}`, err);
    }
  }

  #renderPaging(shown: number, count: number): void {
    const size = this.#size;
    this.#count.textContent = `${formatCount(size)} ${size === 1n ? 'key' : 'keys'}`;
    const firstIndex = this.#pageIndex * count;
    this.#pageInfo.textContent =
      shown === 0 ? (this.#pageIndex === 0 ? '' : 'No more keys') : `Page ${this.#pageIndex + 1} · keys ${formatCount(firstIndex + 1)}–${formatCount(firstIndex + shown)} of ${formatCount(size)}`;
    this.#emptyNote.hidden = shown > 0 || this.#pageIndex > 0;
    this.#emptyNote.textContent = 'This table has no keys. Set one above to create it.';
    this.#buttons.first.disabled = this.#pageIndex === 0;
    this.#buttons.prev.disabled = this.#pageIndex === 0;
    this.#buttons.next.disabled = this.#next === '';
  }

  #row(key: string, value: KvValue): HTMLTableRowElement {
    const type = typeOf(value);
    const edit = el('button', { type: 'button', class: 'link', 'aria-label': `Edit key ${key}` }, 'Edit');
    const remove = el('button', { type: 'button', class: 'link danger-link', 'aria-label': `Delete key ${key}` }, 'Delete');
    const row = el(
      'tr',
      { 'data-key': key },
      el('td', {}, key === '' ? el('span', { class: 'unnamed' }, '(empty key)') : key),
      el('td', {}, typeBadge(type)),
      el('td', { class: 'value' }, type === 'empty' ? el('span', { class: 'unnamed' }, 'empty value') : displayValue(value)),
      el('td', { class: 'row-actions' }, edit, remove),
    );
    edit.addEventListener('click', () => this.#fillEditor(key, value));
    remove.addEventListener('click', () => void this.#deleteKey(key, row));
    return row;
  }

  #fillEditor(key: string, value: KvValue): void {
    const { key: keyInput, type, value: text, bool } = this.#editor;
    keyInput.value = key;
    type.value = typeOf(value);
    this.#syncEditorType();
    if (typeof value === 'boolean') bool.value = String(value);
    else text.value = valueToText(value);
    (type.value === 'bool' ? bool : type.value === 'empty' ? type : text).focus();
  }

  #syncEditorType(): void {
    const { type, value, bool } = this.#editor;
    const kind = type.value as ValueType;
    value.hidden = kind === 'bool';
    bool.hidden = kind !== 'bool';
    value.disabled = kind === 'empty';
    bool.disabled = kind !== 'bool';
    value.placeholder = kind === 'binary' ? 'base64, e.g. AQID' : kind === 'integer' ? 'e.g. 9007199254740993' : kind === 'float' ? 'e.g. 3.14' : '';
  }

  async #submitEditor(): Promise<void> {
    const table = this.#table;
    if (table === undefined) return;
    const { key, type, value, bool } = this.#editor;
    const kind = type.value as ValueType;
    let parsed: KvValue;
    try {
      parsed = parseValueText(kind, kind === 'bool' ? bool.value : value.value);
    } catch (err) {
      report(this.#status, 'error', errorText(err));
      (kind === 'bool' ? bool : value).focus();
      return;
    }
    try {
      const kv = await this.#connection.client();
      const previous = await kv.hset(table, key.value, parsed);
      report(this.#status, 'ok', `Set ${describeKey(key.value)} to ${describeValue(parsed)} (${previous === undefined ? 'a new key' : `was ${describeValue(previous)}`})`);
      await this.#afterWrite(key.value, parsed);
    } catch (err) {
      reportError(this.#status, `Could not set ${key.value}`, err);
    }
  }

  /** Shows a write: the row in place when it is on this page, else the page again; the table counts too. */
  async #afterWrite(key: string, value: KvValue): Promise<void> {
    const existing = [...this.#rows.rows].find((r) => r.dataset.key === key);
    if (existing !== undefined) {
      const row = this.#row(key, value);
      row.classList.add('changed');
      existing.replaceWith(row);
      void this.refreshTables();
      return;
    }
    await this.#loadPage();
    [...this.#rows.rows].find((r) => r.dataset.key === key)?.classList.add('changed');
    void this.refreshTables();
  }

  async #deleteKey(key: string, row: HTMLTableRowElement): Promise<void> {
    const table = this.#table;
    if (table === undefined) return;
    try {
      const kv = await this.#connection.client();
      const removed = await kv.hdel(table, key);
      row.remove();
      this.#size = this.#size > 0n ? this.#size - 1n : 0n;
      this.#count.textContent = `${formatCount(this.#size)} ${this.#size === 1n ? 'key' : 'keys'}`;
      report(this.#status, 'ok', removed === undefined ? `${describeKey(key)} was already gone` : `Deleted ${describeKey(key)} (was ${describeValue(removed)})`);
      void this.refreshTables();
    } catch (err) {
      reportError(this.#status, `Could not delete ${key}`, err);
    }
  }

  #confirmDrop(): void {
    const table = this.#table;
    if (table === undefined) return;
    const dialog = byId<HTMLDialogElement>('drop-dialog');
    byId('drop-text').textContent = `Table “${table}” and all of its ${formatCount(this.#size)} keys will be removed. This cannot be undone.`;
    dialog.returnValue = '';
    dialog.addEventListener(
      'close',
      () => {
        if (dialog.returnValue === 'drop') void this.#drop(table);
        else this.#buttons.drop.focus();
      },
      { once: true },
    );
    dialog.showModal();
  }

  async #drop(table: string): Promise<void> {
    try {
      const kv = await this.#connection.client();
      const removed = await dropTable(kv, table);
      report(this.#status, 'ok', `Dropped table ${table === '' ? '(empty name)' : table}: ${formatCount(removed)} ${removed === 1n ? 'key' : 'keys'} removed`);
      this.#cursors = [''];
      this.#goTo(0);
      void this.refreshTables();
    } catch (err) {
      reportError(this.#status, `Could not drop ${table}`, err);
    }
  }
}

function describeKey(key: string): string {
  return key === '' ? 'the empty key' : `key ${key}`;
}

function describeValue(value: KvValue): string {
  const type = typeOf(value);
  return type === 'empty' ? 'the empty value' : `${type} ${displayValue(value, 60)}`;
}
