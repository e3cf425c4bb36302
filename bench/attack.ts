/**
 * The hostile-client run: `npm run attack -- [flags]`.
 *
 * Starts a real protokv server (a child process, fresh for every scenario) and runs each attack
 * of the hostile-client review against it on loopback, bounded in size and time. Meanwhile it
 * samples the server's RSS from /proc/<pid>/status and runs a probe client in a process of its
 * own, one HGET every 50 ms. Per scenario it prints the peak RSS growth over the level before
 * the attack, the probe's worst and 99th-percentile latency, whether the server survived, and
 * what the attacking client saw.
 *
 * Flags:
 *   --store memory|lmdb        the server's store (memory)
 *   --scenario NAME[,NAME…]    scenarios to run (all); `--list` names them
 *   --transport tcp|tls|yamux  run every scenario over this transport where it applies
 *                              (default: each scenario's first)
 *   --all-transports           run every scenario over each transport it applies to
 *   --server DIR               the protokv checkout whose bin/protokv.js is attacked (this one);
 *                              it must be built
 *   --rss-cap-mib N            kill the server when its RSS passes this (4096)
 *   --big-value-mib N          size of the big binary value (60)
 *   --wide-fields N            fields of the wide table (1000000)
 *   --fanout N                 subscribers of the fan-out scenario (100000)
 *   --drip-seconds N           how long connections drip before a new client tries (40)
 *   --extra-args "…"           more `protokv serve` flags for every scenario
 *   --json FILE                also write the results as JSON
 */
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { rm, writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { connect } from '../src/client/client.js';
import { connectOptionsFor, makeTlsFiles, MiB, openSocket, openYamux, Probe, RawStream, RssMonitor, ServerProcess, type StoreKind, type Transport } from './attack/kit.js';
import { SCENARIOS, type AttackContext, type Scale, type Scenario } from './attack/scenarios.js';

const { values: flags } = parseArgs({
  options: {
    store: { type: 'string', default: 'memory' },
    scenario: { type: 'string' },
    transport: { type: 'string' },
    'all-transports': { type: 'boolean', default: false },
    server: { type: 'string' },
    'rss-cap-mib': { type: 'string', default: '4096' },
    'big-value-mib': { type: 'string', default: '60' },
    'wide-fields': { type: 'string', default: '1000000' },
    fanout: { type: 'string', default: '100000' },
    'drip-seconds': { type: 'string', default: '40' },
    'extra-args': { type: 'string', default: '' },
    json: { type: 'string' },
    list: { type: 'boolean', default: false },
  },
  strict: true,
});

function fail(message: string): never {
  process.stderr.write(`attack: ${message}\n`);
  process.exit(2);
}

function positive(name: string): number {
  const n = Number(flags[name as keyof typeof flags]);
  if (!Number.isFinite(n) || n <= 0) fail(`--${name} must be a positive number`);
  return n;
}

if (flags.list) {
  for (const s of SCENARIOS) process.stdout.write(`${s.name.padEnd(22)} finding ${s.finding.padEnd(3)} ${s.transports.join('/').padEnd(15)} ${s.what}\n`);
  process.exit(0);
}

const store = flags.store as StoreKind;
if (store !== 'memory' && store !== 'lmdb') fail('--store must be memory or lmdb');
const forced = flags.transport as Transport | undefined;
if (forced !== undefined && !['tcp', 'tls', 'yamux'].includes(forced)) fail('--transport must be tcp, tls or yamux');
const here = path.dirname(fileURLToPath(import.meta.url));
const serverRoot = flags.server === undefined ? path.resolve(here, '../..') : path.resolve(flags.server);
const bin = path.join(serverRoot, 'bin', 'protokv.js');
const capBytes = positive('rss-cap-mib') * MiB;
const scale: Scale = {
  bigValue: Math.floor(positive('big-value-mib') * MiB),
  wideFields: Math.floor(positive('wide-fields')),
  fanout: Math.floor(positive('fanout')),
  dripSeconds: positive('drip-seconds'),
};
const extraArgs = flags['extra-args'].split(/\s+/).filter((a) => a !== '');
const wanted = flags.scenario?.split(',').map((s) => s.trim());
const unknown = wanted?.filter((w) => !SCENARIOS.some((s) => s.name === w));
if (unknown?.length) fail(`unknown scenario ${unknown.join(', ')} (see --list)`);
const chosen = SCENARIOS.filter((s) => wanted === undefined || wanted.includes(s.name));

interface Result {
  scenario: string;
  finding: string;
  transport: Transport;
  store: StoreKind;
  baselineMiB: number;
  peakGrowthMiB: number;
  probeMaxMs: number;
  probeP99Ms: number;
  probeFailures: number;
  survived: string;
  outcome: string;
}

/** Every scenario is watched for at least this long. */
const MIN_ATTACK_MS = 3000;

const tlsFiles = await makeTlsFiles();
const probeScript = path.join(here, 'attack', 'probe.js');
const results: Result[] = [];

function transportsOf(s: Scenario): Transport[] {
  if (forced !== undefined) return s.transports.includes(forced) ? [forced] : [];
  return flags['all-transports'] ? s.transports : [s.transports[0]];
}

async function runScenario(s: Scenario, transport: Transport): Promise<Result> {
  const server = await ServerProcess.start({ bin, store, transport, tls: tlsFiles, extraArgs: [...extraArgs, ...(s.serverArgs ?? [])] });
  const deferred: (() => unknown)[] = [];
  const connectOptions = connectOptionsFor(server.port, transport, tlsFiles);
  const ctx: AttackContext = {
    server,
    transport,
    tlsFiles,
    connectOptions,
    scale,
    async raw(options) {
      if (transport === 'yamux') {
        const session = await openYamux(server.port, tlsFiles);
        deferred.push(() => session.destroy());
        return new RawStream(session.open(), options);
      }
      return new RawStream(await openSocket(server.port, transport === 'tls', tlsFiles), options);
    },
    client: () => connect(connectOptions),
    defer: (fn) => deferred.push(fn),
  };
  let outcome: string;
  let probe: Probe | undefined;
  let monitor: RssMonitor | undefined;
  try {
    await s.setup?.(ctx);
    probe = await Probe.start(probeScript, connectOptions);
    await new Promise((r) => setTimeout(r, 500));
    monitor = new RssMonitor(server, capBytes);
    probe.reset();
    const started = Date.now();
    outcome = await s.attack(ctx);
    // The probe needs time to see the server even when the attack is over at once (a quick 413).
    const left = MIN_ATTACK_MS - (Date.now() - started);
    if (left > 0) await new Promise((r) => setTimeout(r, left));
  } catch (err) {
    outcome = `attack failed: ${(err as Error).message.slice(0, 120)}`;
  }
  const growth = monitor?.stop(server) ?? NaN;
  const probeResult = (await probe?.stop()) ?? { maxMs: NaN, p99Ms: NaN, failures: -1, samples: 0 };
  for (const fn of deferred.reverse()) {
    try {
      await fn();
    } catch {
      // Clean-up of a connection the server already dropped.
    }
  }
  const exit = server.exit;
  const survived = server.killedAtCap
    ? `killed at the ${capBytes / MiB} MiB cap`
    : exit === undefined
      ? 'yes'
      : `CRASHED (code ${exit.code}, signal ${exit.signal}) ${lastLine(server.stderr())}`;
  const baseline = monitor?.baseline ?? 0;
  await server.stop();
  return {
    scenario: s.name,
    finding: s.finding,
    transport,
    store,
    baselineMiB: baseline / MiB,
    peakGrowthMiB: growth / MiB,
    probeMaxMs: probeResult.maxMs,
    probeP99Ms: probeResult.p99Ms,
    probeFailures: probeResult.failures,
    survived,
    outcome,
  };
}

function lastLine(text: string): string {
  const lines = text.trim().split('\n').filter((l) => /Error|error/.test(l));
  return (lines[0] ?? text.trim().split('\n').pop() ?? '').slice(0, 100);
}

const fmt = (n: number, digits = 0): string => (Number.isFinite(n) ? n.toFixed(digits) : '-');

process.stdout.write(`protokv attack run: server ${bin}, store ${store}, RSS cap ${capBytes / MiB} MiB\n\n`);
process.stdout.write('| scenario | finding | transport | RSS growth MiB | probe max ms | probe p99 ms | survived | outcome |\n');
process.stdout.write('|---|---|---|---|---|---|---|---|\n');
for (const s of chosen) {
  for (const transport of transportsOf(s)) {
    const r = await runScenario(s, transport);
    results.push(r);
    process.stdout.write(
      `| ${r.scenario} | ${r.finding} | ${r.transport} | ${fmt(r.peakGrowthMiB)} | ${fmt(r.probeMaxMs)} | ${fmt(r.probeP99Ms)} | ${r.survived} | ${r.outcome}${r.probeFailures > 0 ? ` (probe: ${r.probeFailures} failed)` : ''} |\n`,
    );
  }
}
if (flags.json !== undefined) await writeFile(flags.json, JSON.stringify(results, null, 2));
await rm(tlsFiles.dir, { recursive: true, force: true });
process.exit(0);
