/**
 * The web console (SPEC §6), served at `/` by protokv's HTTP listener. It speaks to the server
 * only through `/ws` (the browser client) and `/metrics`.
 */
import { CommandView } from './command-view.js';
import { Connection, webSocketUrl } from './connection.js';
import { DataView } from './data-view.js';
import { byId, errorText } from './dom.js';
import { FiguresView } from './figures-view.js';
import { PubSubView } from './pubsub-view.js';
import { setUpTheme } from './theme.js';

const VIEWS = ['data', 'command', 'pubsub', 'figures'] as const;
type View = (typeof VIEWS)[number];

/** Shows the view named by the URL's hash (`#data` by default). */
function route(command: CommandView): void {
  const hash = location.hash.slice(1);
  const view: View = VIEWS.includes(hash as View) ? (hash as View) : 'data';
  for (const name of VIEWS) byId(`view-${name}`).hidden = name !== view;
  for (const link of document.querySelectorAll<HTMLAnchorElement>('.tabs a')) {
    if (link.dataset.view === view) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  if (view === 'command') command.focus();
}

/** Anything that escapes a view's own error handling is shown, never lost. */
function showUnexpected(err: unknown): void {
  const banner = byId('page-error');
  banner.textContent = `Unexpected error: ${errorText(err)}`;
  banner.hidden = false;
}

function start(): void {
  window.addEventListener('error', (event) => showUnexpected(event.error ?? event.message));
  window.addEventListener('unhandledrejection', (event) => showUnexpected(event.reason));
  setUpTheme();
  const connection = new Connection(webSocketUrl(location));
  new DataView(connection);
  const pubsub = new PubSubView(connection);
  const command = new CommandView(connection, pubsub);
  new FiguresView().start();
  window.addEventListener('hashchange', () => route(command));
  route(command);
}

start();
