/**
 * The web console in a real browser (SPEC §6): headless Chromium loads it from a real protokv
 * server and works it as a person would — tables, typed values, paging, the command line,
 * pub/sub, figures, the theme — while a Node client checks every effect on the server. The
 * browser client's Origin check is tried from a page of another origin.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type { Page } from 'playwright-core';
import type * as BrowserClient from '../src/browser/index.js';
import type { KvClient } from '../src/client/client.js';
import { requests } from '../src/protocol/requests.js';
import { fromValue, type KvValue } from '../src/protocol/values.js';
import { browserMissing, startBrowser, type Browser } from './helpers/browser.js';
import { startConsoleServer, type ConsoleServer } from './helpers/console-server.js';
import { startServerProcess } from './helpers/cli.js';
import { connect } from '../src/client/client.js';

// What the functions passed to `page.evaluate` and friends use of the page; they run in the browser.
declare const document: {
  querySelector(selector: string): { textContent: string | null } | null;
  querySelectorAll(selector: string): { length: number };
  body: unknown;
};
declare function getComputedStyle(element: unknown): { backgroundColor: string };
type Row = { dataset: Record<string, string | undefined> };
type Control = { labels?: { length: number }; getAttribute(name: string): string | null; tagName: string; textContent: string | null };

const skip = browserMissing();
const TIMEOUT = 20_000;

/** Waits until the text of `selector` matches `pattern`. */
async function waitText(page: Page, selector: string, pattern: RegExp): Promise<void> {
  try {
    await page.waitForFunction(
      ([sel, source, flags]) => new RegExp(source, flags).test(document.querySelector(sel)?.textContent ?? ''),
      [selector, pattern.source, pattern.flags] as const,
      { timeout: TIMEOUT },
    );
  } catch (err) {
    const text = await page.locator(selector).first().textContent().catch(() => '(none)');
    throw new Error(`${selector} never matched ${pattern}; it says ${JSON.stringify(text)}`, { cause: err });
  }
}

async function hlen(kv: KvClient, table: string): Promise<KvValue> {
  return fromValue((await kv.send(requests.hlen(table))).values[0]);
}

describe('the web console in Chromium', { skip, timeout: 240_000 }, () => {
  let server: ConsoleServer;
  let browser: Browser;
  let kv: KvClient;
  let page: Page;

  before(async () => {
    server = await startConsoleServer();
    kv = await server.client();
    browser = await startBrowser();
    page = browser.page;
    page.setDefaultTimeout(TIMEOUT);
    await page.goto(server.url);
    await page.waitForSelector('#connection[data-state="connected"]');
  });

  after(async () => {
    await browser?.close();
    await kv?.close();
    await server?.close();
  });

  test('every control has a label, and the page says where it is connected', async () => {
    const unlabeled = await page.$$eval('input, select, textarea, button', (nodes) =>
      nodes
        .filter((n) => {
          const el = n as unknown as Control;
          const named = (el.labels?.length ?? 0) > 0 || el.getAttribute('aria-label') || (el.tagName === 'BUTTON' && el.textContent?.trim());
          return !named;
        })
        .map((n) => (n as unknown as { outerHTML: string }).outerHTML.slice(0, 80)),
    );
    assert.deepEqual(unlabeled, []);
    await waitText(page, '#connection', /Connected · ws:\/\/127\.0\.0\.1:\d+\/ws/);
  });

  test('create a table and set a value of each type, each checked on the server', async () => {
    await page.fill('#open-table-name', 'typed');
    await page.press('#open-table-name', 'Enter');
    await waitText(page, '#table-heading', /Table typed/);
    await waitText(page, '#keys-empty', /no keys/);
    const cases: { key: string; type: string; text: string; expected: KvValue; shown: RegExp }[] = [
      { key: 'str', type: 'string', text: 'héllo wörld ✓', expected: 'héllo wörld ✓', shown: /^héllo wörld ✓$/ },
      { key: 'bin', type: 'binary', text: 'AAEC/w==', expected: Buffer.from([0, 1, 2, 255]), shown: /^00 01 02 ff$/ },
      { key: 'int', type: 'integer', text: '9007199254740993', expected: 9007199254740993n, shown: /^9007199254740993$/ },
      { key: 'float', type: 'float', text: '3.25', expected: 3.25, shown: /^3\.25$/ },
      { key: 'bool', type: 'bool', text: 'false', expected: false, shown: /^false$/ },
      { key: 'empty', type: 'empty', text: '', expected: null, shown: /empty value/ },
    ];
    for (const c of cases) {
      await page.fill('#editor-key', c.key);
      await page.selectOption('#editor-type', c.type);
      if (c.type === 'bool') await page.selectOption('#editor-bool', c.text);
      else if (c.type !== 'empty') await page.fill('#editor-value', c.text);
      await page.click('#editor-submit');
      await waitText(page, '#table-status', new RegExp(`^Set key ${c.key} to `));
      assert.deepEqual(await kv.hget('typed', c.key), c.expected, c.key);
      await waitText(page, `tr[data-key="${c.key}"] td.value`, c.shown);
      assert.equal(await page.textContent(`tr[data-key="${c.key}"] .type`), c.type);
    }
    await waitText(page, '#table-count', /^6 keys$/);
    await waitText(page, '#tables-list', /typed\s*6/);
  });

  test('edit an integer beyond 2^53 and a string in place; bad input is refused plainly', async () => {
    await page.click('tr[data-key="int"] button:has-text("Edit")');
    assert.equal(await page.inputValue('#editor-key'), 'int');
    assert.equal(await page.inputValue('#editor-type'), 'integer');
    assert.equal(await page.inputValue('#editor-value'), '9007199254740993');
    await page.fill('#editor-value', '-9223372036854775808');
    await page.click('#editor-submit');
    await waitText(page, '#table-status', /was integer 9007199254740993/);
    assert.equal(await kv.hget('typed', 'int'), -(1n << 63n));
    await waitText(page, 'tr[data-key="int"] td.value', /^-9223372036854775808$/);

    await page.fill('#editor-value', '9223372036854775808');
    await page.click('#editor-submit');
    await waitText(page, '#table-status', /outside the int64 range/);
    assert.equal(await page.getAttribute('#table-status', 'role'), 'alert');
    assert.equal(await kv.hget('typed', 'int'), -(1n << 63n));

    await page.click('tr[data-key="str"] button:has-text("Edit")');
    await page.fill('#editor-value', 'line one\nline two');
    await page.click('#editor-submit');
    await waitText(page, '#table-status', /^Set key str/);
    assert.equal(await kv.hget('typed', 'str'), 'line one\nline two');
  });

  test('delete a key', async () => {
    await kv.hset('typed', 'doomed', 'bye');
    await page.click('#table-refresh');
    await page.click('tr[data-key="doomed"] button:has-text("Delete")');
    await waitText(page, '#table-status', /^Deleted key doomed \(was string bye\)/);
    assert.equal(await kv.hexist('typed', 'doomed'), false);
    assert.equal(await page.locator('tr[data-key="doomed"]').count(), 0);
  });

  test('page through a 10,000-key table, forwards and back', async () => {
    for (let start = 0; start < 10_000; start += 1000) {
      await kv.hmset('big', Array.from({ length: 1000 }, (_, i): [string, KvValue] => [`k${String(start + i).padStart(5, '0')}`, BigInt(start + i)]));
    }
    await page.click('#tables-refresh');
    await waitText(page, '#tables-list', /big\s*10,000/);
    await page.click('button[data-table="big"]');
    await waitText(page, '#table-count', /^10,000 keys$/);
    await page.selectOption('#page-size', '1000');
    const seen = new Set<string>();
    const pages: string[][] = [];
    for (let n = 1; ; n++) {
      await waitText(page, '#page-info', new RegExp(`^Page ${n} · `));
      const keys = await page.$$eval('#keys tbody tr', (rows) => rows.map((r) => (r as unknown as Row).dataset.key ?? ''));
      pages.push(keys);
      for (const k of keys) seen.add(k);
      if (await page.isDisabled('#page-next')) break;
      assert.ok(n < 20, 'paging ends');
      await page.click('#page-next');
    }
    assert.equal(seen.size, 10_000);
    assert.ok(pages.every((p) => p.length <= 1000));
    await page.click('#page-prev');
    await waitText(page, '#page-info', new RegExp(`^Page ${pages.length - 1} · `));
    assert.deepEqual(await page.$$eval('#keys tbody tr', (rows) => rows.map((r) => (r as unknown as Row).dataset.key ?? '')), pages.at(-2));
    await page.click('#page-first');
    await waitText(page, '#page-info', /^Page 1 · keys 1–1,000 of 10,000$/);
  });

  test('the tables list comes a page at a time, each table with its size', async () => {
    await Promise.all(Array.from({ length: 130 }, (_, i) => kv.hmset(`many${String(i).padStart(3, '0')}`, { a: 1n, b: 2n, c: 3n })));
    await page.click('#tables-refresh');
    await page.waitForSelector('#tables-more:not([hidden])');
    const listed = () => page.locator('#tables-list button[data-table]').count();
    const first = await listed();
    assert.ok(first < 130, `one page, not every table (${first})`);
    while (await page.isVisible('#tables-more')) {
      const before = await listed();
      await page.click('#tables-more');
      await page.waitForFunction((n) => document.querySelectorAll('#tables-list button[data-table]').length > n || document.querySelector('#tables-more[hidden]') !== null, before);
    }
    const names = await page.$$eval('#tables-list button[data-table]', (nodes) => nodes.map((n) => (n as unknown as Row).dataset.table ?? ''));
    assert.equal(new Set(names).size, names.length, 'no table listed twice');
    for (let i = 0; i < 130; i++) assert.ok(names.includes(`many${String(i).padStart(3, '0')}`), `many${i} listed`);
    assert.match((await page.textContent('button[data-table="many042"]')) ?? '', /many042\s*3/);
    await Promise.all(Array.from({ length: 130 }, (_, i) => kv.send(requests.hdrop(`many${String(i).padStart(3, '0')}`))));
    await page.click('#tables-refresh');
    await page.waitForSelector('#tables-more', { state: 'hidden' });
  });

  test('drop a table only after confirming', async () => {
    await page.click('button[data-table="typed"]');
    await waitText(page, '#table-heading', /Table typed/);
    await page.click('#table-drop');
    await page.waitForSelector('#drop-dialog[open]');
    await waitText(page, '#drop-text', /“typed” and all of its 6 keys/);
    await page.click('#drop-dialog button[value="cancel"]');
    assert.equal(await hlen(kv, 'typed'), 6n, 'cancel keeps the table');
    await page.click('#table-drop');
    await page.click('#drop-dialog button[value="drop"]');
    await waitText(page, '#table-status', /^Dropped table typed: 6 keys removed$/);
    assert.equal(await hlen(kv, 'typed'), 0n);
    await waitText(page, '#keys-empty', /no keys/);
  });

  test('the command line runs commands, shows typed answers and errors, and keeps history', async () => {
    await page.click('nav a[href="#command"]');
    await page.waitForSelector('#view-command:not([hidden])');
    const run = async (line: string, expect: RegExp): Promise<void> => {
      const before = await page.locator('.cli-entry').count();
      await page.fill('#cli-input', line);
      await page.press('#cli-input', 'Enter');
      await page.waitForFunction((n) => document.querySelectorAll('.cli-entry').length > n && document.querySelector('.cli-entry:last-child .cli-status') !== null, before);
      await waitText(page, '.cli-entry:last-child', expect);
    };
    await run('HSET cli k int:9223372036854775807', /200 · OK · 1 value/);
    assert.equal(await kv.hget('cli', 'k'), (1n << 63n) - 1n);
    await run('HGET cli k', /200 · OK · 1 value.*integer\s*9223372036854775807/s);
    await run('HMSET cli s "two words" b bin:AQID f float:0.5', /200 · OK · 3 values/);
    assert.deepEqual(await kv.hmget('cli', ['s', 'b', 'f']), ['two words', Buffer.from([1, 2, 3]), 0.5]);
    await run('HGET cli nope', /404 · Not found: table cli, key nope/);
    await run('HSCAN cli "" 2', /200 · OK · 1 value · 2 pairs/);
    await run('FROB cli', /unknown command "FROB"/);
    await run('HGET cli', /usage: HGET table key/);
    await page.press('#cli-input', 'ArrowUp');
    assert.equal(await page.inputValue('#cli-input'), 'HGET cli');
    await page.press('#cli-input', 'ArrowUp');
    assert.equal(await page.inputValue('#cli-input'), 'FROB cli');
    await page.press('#cli-input', 'ArrowDown');
    await page.press('#cli-input', 'ArrowDown');
    assert.equal(await page.inputValue('#cli-input'), '');
    await page.fill('#cli-input', 'HELP');
    await page.press('#cli-input', 'Enter');
    await waitText(page, '.cli-entry:last-child', /HSCAN table \[cursor\] \[count\]/);
  });

  test('watch a message published from the Node client arrive, pause and resume, publish back', async () => {
    await page.click('nav a[href="#pubsub"]');
    await page.fill('#subscribe-topic', 'news');
    await page.click('#subscribe-form button[type="submit"]');
    await waitText(page, '#subscriptions', /news/);
    await kv.publish('news', 'hello from node', 7n, Buffer.from([1, 2]), null);
    await waitText(page, '#messages', /hello from node/);
    await waitText(page, '#messages tr:first-child', /string\s*hello from node\s*integer\s*7\s*binary\s*01 02\s*empty/);

    await page.click('#messages-pause');
    await kv.publish('news', 'held');
    await waitText(page, '#pubsub-status', /Paused: 1 new message held/);
    assert.equal(await page.locator('#messages tr', { hasText: 'held' }).count(), 0);
    await page.click('#messages-pause');
    await waitText(page, '#messages tr:first-child', /held/);
    await page.click('#messages-clear');
    assert.equal(await page.locator('#messages tr').count(), 0, 'cleared');
    await kv.publish('news', 'after clearing');
    await waitText(page, '#messages tr:first-child', /after clearing/);

    const sub = await kv.subscribe('from-browser');
    const got = (async () => {
      for await (const message of sub) return message;
      return undefined;
    })();
    await page.fill('#publish-topic', 'from-browser');
    await page.fill('#publish-values li:nth-child(1) input', 'hi');
    await page.click('#publish-add');
    await page.selectOption('#publish-values li:nth-child(2) select', 'integer');
    await page.fill('#publish-values li:nth-child(2) input', '18446744073709551615');
    await page.click('#publish-form button[type="submit"]');
    await waitText(page, '#publish-status', /Value 2: .*outside the int64 range/);
    await page.fill('#publish-values li:nth-child(2) input', '-5');
    await page.click('#publish-form button[type="submit"]');
    await waitText(page, '#publish-status', /^Published 2 values to from-browser$/);
    assert.deepEqual(await got, ['hi', -5n]);

    await page.click('#subscriptions button');
    await waitText(page, '#pubsub-status', /Subscription to news ended/);
    assert.equal(await page.locator('#subscriptions li').count(), 0);
  });

  test('the figures are drawn from /metrics: ops/s by command, latency, connections, memory', async () => {
    await page.click('nav a[href="#figures"]');
    await page.waitForSelector('#view-figures:not([hidden])');
    // Traffic from the Node client while the console scrapes, until the command shows in the table.
    let loading = true;
    const load = (async () => {
      for (let i = 0; loading; i++) {
        await Promise.all(Array.from({ length: 50 }, (_, j) => kv.hset('figures', `k${j}`, BigInt(i))));
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    try {
      await waitText(page, '#figures-status', /^Live · updated /);
      await waitText(page, '#fig-commands', /HSET/);
    } finally {
      loading = false;
      await load;
    }
    await waitText(page, '#fig-ops-now', /ops\/s/);
    await waitText(page, '#fig-connections-now', /websocket [1-9]/);
    await waitText(page, '#fig-connections-now', /tcp [1-9]/);
    await waitText(page, '#fig-memory-now', /\d.*[KMG]iB.*resident/);
    for (const chart of ['ops', 'latency', 'connections', 'memory']) {
      assert.ok((await page.locator(`#fig-${chart}-chart svg polyline`).count()) >= 1, `the ${chart} chart has a line`);
    }
    const row = page.locator('#fig-commands tr', { hasText: 'HSET' });
    assert.match((await row.textContent()) ?? '', /HSET\s*[\d.,]+/);
    assert.equal(await row.locator('svg polyline').count(), 1, 'a sparkline for HSET');
  });

  test('the theme follows the system and the toggle', async () => {
    const background = () => page.evaluate(() => getComputedStyle(document.body).backgroundColor);
    const light = await background();
    await page.click('#theme-toggle');
    assert.equal(await page.getAttribute('html', 'data-theme'), 'light');
    await page.click('#theme-toggle');
    assert.equal(await page.getAttribute('html', 'data-theme'), 'dark');
    assert.notEqual(await background(), light);
    await page.click('#theme-toggle');
    assert.equal(await page.getAttribute('html', 'data-theme'), null);
    assert.equal(await background(), light);
  });

  test('no errors in the browser console', () => {
    assert.deepEqual(browser.errors, []);
  });
});

describe('the console served by protokv serve', { skip, timeout: 120_000 }, () => {
  test('loads, connects over /ws, runs a command and reads /metrics', async () => {
    const server = await startServerProcess(['--memory', '--listen', '127.0.0.1:0']);
    const browser = await startBrowser();
    try {
      const page = browser.page;
      page.setDefaultTimeout(TIMEOUT);
      await page.goto(`${server.http!}/`);
      await waitText(page, '#connection', /Connected · ws:\/\/127\.0\.0\.1:\d+\/ws/);
      await page.click('nav a[href="#command"]');
      await page.fill('#cli-input', 'HSET served k int:42');
      await page.press('#cli-input', 'Enter');
      await waitText(page, '.cli-entry:last-child', /200 · OK · 1 value/);
      const kv = await connect({ host: '127.0.0.1', port: server.port });
      assert.equal(await kv.hget('served', 'k'), 42n);
      await kv.close();
      await page.click('nav a[href="#figures"]');
      await waitText(page, '#figures-status', /^Live · updated /);
      await waitText(page, '#fig-connections-now', /websocket [1-9]/);
      assert.deepEqual(browser.errors, []);
    } finally {
      await browser.close();
      await server.stop();
    }
  });

  test('says plainly when the server is gone, and reconnects by itself when it is back', async () => {
    let server = await startServerProcess(['--memory', '--listen', '127.0.0.1:0']);
    const ports = ['--listen', `127.0.0.1:${server.port}`, '--http', new URL(server.http!).host];
    const browser = await startBrowser();
    try {
      const page = browser.page;
      page.setDefaultTimeout(60_000);
      await page.goto(`${server.http!}/#figures`);
      await waitText(page, '#connection', /^Connected · /);
      await waitText(page, '#figures-status', /^Live · updated /);
      await server.stop('SIGKILL');
      await waitText(page, '#connection', /Connection lost|Reconnecting/);
      await page.waitForSelector('#connection[data-state="reconnecting"]');
      await waitText(page, '#figures-status', /^Could not read \/metrics: /);
      server = await startServerProcess(['--memory', ...ports]);
      await waitText(page, '#connection', /^Connected · /);
      await waitText(page, '#figures-status', /^Live · updated /);
      await page.click('nav a[href="#command"]');
      await page.fill('#cli-input', 'HEXIST t k');
      await page.press('#cli-input', 'Enter');
      await waitText(page, '.cli-entry:last-child', /200 · OK · 1 value.*bool\s*false/s);
    } finally {
      await browser.close();
      await server.stop('SIGKILL');
    }
  });
});

describe('the Origin check, from a page of another origin', { skip, timeout: 120_000 }, () => {
  let other: http.Server;
  let otherOrigin: string;
  let browser: Browser;

  before(async () => {
    // A second site on another port: its page loads the browser client and tries the console's /ws.
    const bundle = await readFile(fileURLToPath(new URL('../browser/protokv.js', import.meta.url)));
    other = http.createServer((req, res) => {
      if (req.url === '/protokv.js') res.writeHead(200, { 'content-type': 'text/javascript' }).end(bundle);
      else res.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><title>other site</title>');
    });
    other.listen(0, '127.0.0.1');
    await once(other, 'listening');
    otherOrigin = `http://127.0.0.1:${(other.address() as AddressInfo).port}`;
    browser = await startBrowser();
  });

  after(async () => {
    await browser?.close();
    other?.closeAllConnections();
    other?.close();
  });

  async function tryFromOtherSite(url: string): Promise<string> {
    const page = browser.page;
    await page.goto(`${otherOrigin}/`);
    return page.evaluate(async (endpoint) => {
      const bundle = '/protokv.js';
      const { connect } = (await import(bundle)) as typeof BrowserClient;
      try {
        const kv = await connect({ url: endpoint, reconnect: false });
        await kv.hset('cross', 'site', 'write');
        await kv.close();
        return 'connected';
      } catch (err) {
        return `${(err as Error).name}: ${(err as Error).message}`;
      }
    }, url);
  }

  test('is refused when not allowed, with a message that says what to do', async () => {
    const server = await startConsoleServer();
    try {
      const outcome = await tryFromOtherSite(server.wsUrl);
      assert.match(outcome, /^ConnectionClosedError: cannot open a WebSocket to ws:\/\/127\.0\.0\.1:\d+\/ws: .*http\.allowed_origins/);
      const kv = await server.client();
      assert.equal(await kv.hexist('cross', 'site'), false);
      await kv.close();
    } finally {
      await server.close();
    }
  });

  test('is accepted when listed in http.allowed_origins', async () => {
    const server = await startConsoleServer({ allowedOrigins: [otherOrigin] });
    try {
      assert.equal(await tryFromOtherSite(server.wsUrl), 'connected');
      const kv = await server.client();
      assert.equal(await kv.hget('cross', 'site'), 'write');
      await kv.close();
    } finally {
      await server.close();
    }
  });
});
