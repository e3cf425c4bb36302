/**
 * `npm run screenshots`: pictures of the web console for the README (`docs/console-*.png`),
 * taken with the tooling of the browser tests — a real protokv server with sample data and a
 * little load, and headless Chromium.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Page } from 'playwright-core';
import type { KvClient } from '../src/client/client.js';
import type { KvValue } from '../src/protocol/values.js';
import { browserMissing, startBrowser } from '../test/helpers/browser.js';
import { startConsoleServer } from '../test/helpers/console-server.js';

const DOCS = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../docs');
const VIEWPORT = { width: 1280, height: 760 };

async function seed(kv: KvClient): Promise<void> {
  await kv.hmset('users', {
    'ada:name': 'Ada Lovelace',
    'ada:born': 1815n,
    'ada:height_m': 1.65,
    'ada:active': true,
    'ada:avatar': new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d]),
    'ada:nickname': null,
    'grace:name': 'Grace Hopper',
    'grace:born': 1906n,
    'grace:active': false,
    'alan:name': 'Alan Turing',
    'alan:born': 1912n,
    'ledger:max': 9223372036854775807n,
  });
  for (let start = 0; start < 12_000; start += 2000) {
    await kv.hmset('sessions', Array.from({ length: 2000 }, (_, i): [string, KvValue] => [`s${String(start + i).padStart(6, '0')}`, `token-${(start + i) * 7919}`]));
  }
  await kv.hmset('config', { mode: 'production', replicas: 3n, ratio: 0.75, maintenance: false });
  await kv.hmset('counters', { visits: 48213n, signups: 1280n });
}

/** Background traffic so the figures have something to show. */
function load(kv: KvClient): () => void {
  let running = true;
  void (async () => {
    for (let i = 0; running; i++) {
      await Promise.all([
        ...Array.from({ length: 40 }, (_, j) => kv.hget('sessions', `s${String((i * 40 + j) % 12000).padStart(6, '0')}`)),
        ...Array.from({ length: 12 }, (_, j) => kv.hset('counters', `page${j}`, BigInt(i))),
        kv.publish('events', `tick ${i}`),
      ]);
      await new Promise((r) => setTimeout(r, 8));
    }
  })();
  return () => (running = false);
}

async function shoot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: path.join(DOCS, `console-${name}.png`) });
  process.stdout.write(`docs/console-${name}.png\n`);
}

async function main(): Promise<void> {
  const missing = browserMissing();
  if (missing !== undefined) throw new Error(missing);
  const server = await startConsoleServer();
  const kv = await server.client();
  await seed(kv);
  const stopLoad = load(kv);
  try {
    for (const theme of ['light', 'dark'] as const) {
      const browser = await startBrowser({ colorScheme: theme, viewport: VIEWPORT });
      try {
        const page = browser.page;
        await page.goto(server.url);
        await page.waitForSelector('#connection[data-state="connected"]');
        await page.click('button[data-table="users"]');
        await page.waitForSelector('tr[data-key="ada:name"]');
        await page.click('tr[data-key="ada:born"] button:has-text("Edit")');
        await shoot(page, `data-${theme}`);
        if (theme === 'dark') continue;

        await page.click('nav a[href="#command"]');
        for (const line of ['HGET users ada:born', 'HMSET config replicas int:5 ratio float:0.8', 'HSCAN users "" 4', 'HGET users nobody']) {
          await page.fill('#cli-input', line);
          await page.press('#cli-input', 'Enter');
          await page.waitForFunction((n) => document.querySelectorAll('.cli-entry .cli-status').length >= n, 1);
        }
        await page.waitForTimeout(300);
        await shoot(page, 'command-line');

        await page.click('nav a[href="#pubsub"]');
        await page.fill('#subscribe-topic', 'orders');
        await page.click('#subscribe-form button[type="submit"]');
        await page.waitForSelector('#subscriptions li');
        await kv.publish('orders', 'order-1041', 3n, 59.9, true);
        await kv.publish('orders', 'order-1042', 1n, 12.5, false);
        await kv.publish('orders', 'order-1043', 7n, 230.0, true, new Uint8Array([0xca, 0xfe]));
        await page.fill('#publish-topic', 'orders');
        await page.fill('#publish-values li input', 'order-1044');
        await page.waitForFunction(() => document.querySelectorAll('#messages tr').length >= 3);
        await shoot(page, 'pubsub');

        await page.click('nav a[href="#figures"]');
        // Enough scrapes for the charts to have a shape.
        await page.waitForTimeout(24_000);
        await shoot(page, 'figures');
      } finally {
        await browser.close();
      }
    }
  } finally {
    stopLoad();
    await kv.close();
    await server.close();
  }
}

declare const document: { querySelectorAll(selector: string): { length: number } };

await main();
