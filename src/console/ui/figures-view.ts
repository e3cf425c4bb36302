/**
 * Figures: reads `/metrics` every two seconds and draws the last two minutes — operations per
 * second, latency percentiles, connections by transport, memory — plus a table by command.
 */
import { figuresBetween, type Figures } from '../figures.js';
import { parseExposition, type Scrape } from '../prometheus.js';
import { drawChart, drawSparkline } from './chart.js';
import { byId, el, errorText, formatBytes, formatCount, formatDecimal, formatSeconds, report } from './dom.js';

const INTERVAL_MS = 2000;
/** Points kept per series: two minutes at one scrape every two seconds. */
const CAPACITY = 60;
/** Commands drawn as their own line in the throughput chart; the rest only in the table. */
const TOP_COMMANDS = 4;

/** A window of the last `CAPACITY` points of several named series. */
class History {
  readonly #series = new Map<string, number[]>();
  #length = 0;

  /** Appends one point to every series (0 for a series missing from `points`). */
  push(points: ReadonlyMap<string, number>): void {
    for (const name of points.keys()) if (!this.#series.has(name)) this.#series.set(name, new Array<number>(this.#length).fill(0));
    for (const [name, values] of this.#series) {
      values.push(points.get(name) ?? 0);
      if (values.length > CAPACITY) values.shift();
    }
    this.#length = Math.min(CAPACITY, this.#length + 1);
  }

  get(name: string): readonly number[] {
    return this.#series.get(name) ?? [];
  }

  /** Series names, largest latest value first. */
  names(): string[] {
    return [...this.#series.keys()].sort((a, b) => (this.get(b).at(-1) ?? 0) - (this.get(a).at(-1) ?? 0) || a.localeCompare(b));
  }
}

export class FiguresView {
  readonly #status = byId('figures-status');
  readonly #ops = new History();
  readonly #latency = new History();
  readonly #connections = new History();
  readonly #memory = new History();
  readonly #latest = new Map<string, { p50?: number; p99?: number }>();
  #previous: { scrape: Scrape; at: number } | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;

  /** Starts reading `/metrics`. */
  start(): void {
    void this.#tick();
  }

  async #tick(): Promise<void> {
    try {
      const response = await fetch('/metrics', { cache: 'no-store', headers: { accept: 'text/plain' } });
      if (!response.ok) throw new Error(`HTTP ${response.status} ${response.statusText}`);
      const scrape = parseExposition(await response.text());
      const at = performance.now();
      const previous = this.#previous;
      this.#previous = { scrape, at };
      if (previous !== undefined) this.#show(figuresBetween(previous.scrape, scrape, (at - previous.at) / 1000));
      report(this.#status, 'note', previous === undefined ? 'Reading /metrics…' : `Live · updated ${new Date().toLocaleTimeString()}`);
    } catch (err) {
      report(this.#status, 'error', `Could not read /metrics: ${errorText(err)}`);
    } finally {
      this.#timer = setTimeout(() => void this.#tick(), INTERVAL_MS);
    }
  }

  /** Stops reading `/metrics`. */
  stop(): void {
    clearTimeout(this.#timer);
  }

  #show(f: Figures): void {
    this.#ops.push(new Map([['all', f.totalOpsPerSecond], ...f.opsPerSecond]));
    const all = f.latencyAll;
    this.#latency.push(new Map(all === undefined ? [] : [['p50', all.p50 * 1000], ['p99', all.p99 * 1000]]));
    this.#connections.push(new Map([['all', [...f.connections.values()].reduce((a, b) => a + b, 0)], ...f.connections]));
    this.#memory.push(new Map([['rss', (f.rssBytes ?? 0) / 2 ** 20], ['heap', (f.heapUsedBytes ?? 0) / 2 ** 20]]));
    for (const [command, p] of f.latency) this.#latest.set(command, p);

    const rate = (n: number) => formatDecimal(n);
    const commands = this.#ops.names().filter((n) => n !== 'all');
    byId('fig-ops-now').replaceChildren(formatDecimal(f.totalOpsPerSecond), el('small', {}, 'ops/s'));
    drawChart(
      byId('fig-ops-chart'),
      [{ label: 'all', values: this.#ops.get('all') }, ...commands.slice(0, TOP_COMMANDS).map((c) => ({ label: c, values: this.#ops.get(c) }))],
      CAPACITY,
      rate,
      `Operations per second, last two minutes; now ${rate(f.totalOpsPerSecond)}`,
    );

    const ms = (n: number) => `${formatDecimal(n)} ms`;
    byId('fig-latency-now').replaceChildren(
      all === undefined ? '–' : formatSeconds(all.p99),
      el('small', {}, all === undefined ? 'no commands in the last interval' : `p99 · p50 ${formatSeconds(all.p50)}`),
    );
    drawChart(
      byId('fig-latency-chart'),
      [{ label: 'p99', values: this.#latency.get('p99') }, { label: 'p50', values: this.#latency.get('p50') }],
      CAPACITY,
      ms,
      `Command latency percentiles in milliseconds, last two minutes`,
      0.1,
    );

    // Transports that had a connection in the window (the metric lists every transport, most at 0).
    const transports = this.#connections.names().filter((n) => n !== 'all' && this.#connections.get(n).some((v) => v > 0));
    const open = this.#connections.get('all').at(-1) ?? 0;
    byId('fig-connections-now').replaceChildren(formatCount(open), el('small', {}, transports.map((t) => `${t} ${formatCount(f.connections.get(t) ?? 0)}`).join(' · ') || 'open'));
    drawChart(
      byId('fig-connections-chart'),
      transports.map((t) => ({ label: t, values: this.#connections.get(t) })),
      CAPACITY,
      (n) => formatCount(Math.round(n)),
      `Open connections by transport, last two minutes; now ${formatCount(open)}`,
    );

    byId('fig-memory-now').replaceChildren(
      f.rssBytes === undefined ? '–' : formatBytes(f.rssBytes),
      el('small', {}, f.heapUsedBytes === undefined ? 'resident' : `resident · heap ${formatBytes(f.heapUsedBytes)}`),
    );
    drawChart(
      byId('fig-memory-chart'),
      [{ label: 'resident', values: this.#memory.get('rss') }, { label: 'heap used', values: this.#memory.get('heap') }],
      CAPACITY,
      (n) => `${formatDecimal(n)} MiB`,
      'Memory in MiB, last two minutes',
      16,
    );

    byId('fig-commands').replaceChildren(
      ...commands.map((command) => {
        const p = this.#latest.get(command);
        const ops = this.#ops.get(command);
        return el(
          'tr',
          {},
          el('th', { scope: 'row' }, command),
          el('td', { class: 'num' }, rate(ops.at(-1) ?? 0)),
          el('td', { class: 'num' }, p?.p50 === undefined ? '–' : formatSeconds(p.p50)),
          el('td', { class: 'num' }, p?.p99 === undefined ? '–' : formatSeconds(p.p99)),
          el('td', { class: 'spark' }, drawSparkline(ops, CAPACITY, `${command} operations per second, last two minutes`)),
        );
      }),
    );
  }
}
