/** Small DOM helpers shared by the console's views. */
import type { ValueType } from '../value-text.js';

type Child = Node | string | null | undefined | false;

/** Creates an element with attributes (strings; `true` for boolean ones) and children. */
export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attributes: Record<string, string | boolean | undefined> = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === false) continue;
    node.setAttribute(name, value === true ? '' : value);
  }
  for (const child of children) if (child !== null && child !== undefined && child !== false) node.append(child);
  return node;
}

/** The element with `id`; the page is ours, so a missing one is a bug worth a loud error. */
export function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  const node = document.getElementById(id);
  if (node === null) throw new Error(`the console page has no #${id}`);
  return node as T;
}

/** A coloured badge naming a value's type. */
export function typeBadge(type: ValueType): HTMLElement {
  return el('span', { class: `type type-${type}` }, type);
}

/** Shows a table name, marking the empty name so it is not mistaken for nothing. */
export function tableName(name: string): Node {
  return name === '' ? el('span', { class: 'unnamed' }, '(empty name)') : document.createTextNode(name);
}

/** What an error says to a person: the server's status and message, or the error's message. */
export function errorText(err: unknown): string {
  if (err instanceof Error) {
    const status = (err as { status?: unknown }).status;
    return typeof status === 'number' ? `${status} · ${err.message}` : err.message;
  }
  return String(err);
}

/** Sets a status line: a plain note, a success, or an error (announced, never swallowed). */
export function report(target: HTMLElement, kind: 'note' | 'ok' | 'error', text: string): void {
  target.textContent = text;
  target.classList.toggle('error', kind === 'error');
  target.classList.toggle('ok', kind === 'ok');
  target.setAttribute('role', kind === 'error' ? 'alert' : 'status');
}

/** Reports a failure in `target`. */
export function reportError(target: HTMLElement, what: string, err: unknown): void {
  report(target, 'error', `${what}: ${errorText(err)}`);
}

const integer = new Intl.NumberFormat('en');
const decimal = new Intl.NumberFormat('en', { maximumFractionDigits: 1 });

/** `12,345` */
export function formatCount(n: number | bigint): string {
  return integer.format(n);
}

/** A rate or measure with at most one decimal. */
export function formatDecimal(n: number): string {
  return decimal.format(n);
}

/** Bytes in the largest binary unit that keeps the number readable. */
export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${decimal.format(n)} ${units[i]}`;
}

/** A duration in seconds, in the unit that suits it. */
export function formatSeconds(s: number): string {
  if (s < 1e-3) return `${decimal.format(s * 1e6)} µs`;
  if (s < 1) return `${decimal.format(s * 1e3)} ms`;
  return `${decimal.format(s)} s`;
}
