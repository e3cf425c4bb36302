/**
 * A reader of the Prometheus text exposition format (version 0.0.4), enough for the console's
 * figures: every sample with its name, labels and value. Comments, `# HELP` and `# TYPE` lines and
 * timestamps are skipped. Runs in browsers and in Node alike.
 */

/** One sample: `name{labels} value`. */
export interface Sample {
  name: string;
  labels: Readonly<Record<string, string>>;
  value: number;
}

/** A scrape: samples grouped by metric name, in the order they appeared. */
export type Scrape = ReadonlyMap<string, readonly Sample[]>;

/** Thrown for a line that is not a valid sample; says which line and why. */
export class ExpositionError extends Error {
  constructor(line: number, why: string) {
    super(`line ${line} of the metrics text: ${why}`);
    this.name = 'ExpositionError';
  }
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*/;

/** Parses a whole exposition; throws `ExpositionError` at the first malformed line. */
export function parseExposition(text: string): Scrape {
  const out = new Map<string, Sample[]>();
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (line === '' || line.startsWith('#')) continue;
    const sample = parseSample(line, i + 1);
    const list = out.get(sample.name);
    if (list === undefined) out.set(sample.name, [sample]);
    else list.push(sample);
  }
  return out;
}

function parseSample(line: string, lineNumber: number): Sample {
  const name = NAME.exec(line)?.[0];
  if (name === undefined) throw new ExpositionError(lineNumber, 'expected a metric name');
  let pos = name.length;
  const labels: Record<string, string> = {};
  if (line[pos] === '{') {
    pos++;
    for (;;) {
      while (line[pos] === ' ') pos++;
      if (line[pos] === '}') {
        pos++;
        break;
      }
      const label = LABEL_NAME.exec(line.slice(pos))?.[0];
      if (label === undefined) throw new ExpositionError(lineNumber, 'expected a label name');
      pos += label.length;
      if (line[pos] !== '=' || line[pos + 1] !== '"') throw new ExpositionError(lineNumber, `expected ="…" after label ${label}`);
      pos += 2;
      let value = '';
      for (;;) {
        const c = line[pos++];
        if (c === undefined) throw new ExpositionError(lineNumber, `unterminated value of label ${label}`);
        if (c === '"') break;
        if (c === '\\') {
          const e = line[pos++];
          value += e === 'n' ? '\n' : e;
        } else value += c;
      }
      labels[label] = value;
      while (line[pos] === ' ') pos++;
      if (line[pos] === ',') pos++;
      else if (line[pos] !== '}') throw new ExpositionError(lineNumber, 'expected , or } after a label');
    }
  }
  const [valueText] = line.slice(pos).trim().split(/\s+/, 1);
  const value = parseNumber(valueText);
  if (value === undefined) throw new ExpositionError(lineNumber, `expected a number, got ${JSON.stringify(valueText)}`);
  return { name, labels, value };
}

function parseNumber(text: string | undefined): number | undefined {
  switch (text) {
    case undefined:
    case '':
      return undefined;
    case '+Inf':
    case 'Inf':
      return Infinity;
    case '-Inf':
      return -Infinity;
    case 'NaN':
      return NaN;
  }
  const n = Number(text);
  return Number.isNaN(n) ? undefined : n;
}

/** The samples of `name` (none when absent). */
export function samplesOf(scrape: Scrape, name: string): readonly Sample[] {
  return scrape.get(name) ?? [];
}

/** Sums the samples of `name` by the value of `label` (e.g. commands by `command`). */
export function sumBy(scrape: Scrape, name: string, label: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const s of samplesOf(scrape, name)) {
    const key = s.labels[label] ?? '';
    out.set(key, (out.get(key) ?? 0) + s.value);
  }
  return out;
}

/** The sum of every sample of `name`, or `undefined` when there is none. */
export function total(scrape: Scrape, name: string): number | undefined {
  const list = scrape.get(name);
  if (list === undefined) return undefined;
  let sum = 0;
  for (const s of list) sum += s.value;
  return sum;
}
