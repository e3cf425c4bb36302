/**
 * A reference model of the hash commands (SPEC 1.5): a Map of Maps and nothing clever, against
 * which the real service's responses are compared command by command.
 */
import type { CommandRequest, CommandResponse, Value } from '../../src/protocol/generated/abi.js';

/** A value reduced to what the protocol promises to keep: its type and its content. */
export type Norm =
  | readonly ['string', string]
  | readonly ['binary', string]
  | readonly ['integer', bigint]
  | readonly ['float', number]
  | readonly ['bool', boolean]
  | readonly ['empty'];

export function norm(v: Value | undefined): Norm {
  const inner = v?.value;
  if (inner === undefined) return ['empty'];
  switch (inner.$case) {
    case 'string':
      return ['string', inner.value];
    case 'binary':
      return ['binary', Buffer.from(inner.value).toString('hex')];
    case 'integer':
      return ['integer', inner.value];
    case 'float':
      return ['float', inner.value];
    case 'bool':
      return ['bool', inner.value];
  }
}

/** What a response says, in a form `assert.deepStrictEqual` compares meaningfully. */
export interface Outcome {
  status: number;
  /** `Not found` for a 404 whose message starts so, `error` for another non-200 with a message. */
  message: '' | 'Not found' | 'error' | 'missing message';
  values: Norm[];
  /** Sorted by key: HGETALL's order is unspecified. */
  pairs: [string, Norm][];
}

const byKey = (a: [string, Norm], b: [string, Norm]): number => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0);

export function outcomeOf(response: CommandResponse): Outcome {
  let message: Outcome['message'] = '';
  if (response.status === 404 && response.message.startsWith('Not found')) message = 'Not found';
  else if (response.status !== 200) message = response.message.length > 0 ? 'error' : 'missing message';
  return {
    status: response.status,
    message,
    values: response.values.map(norm),
    pairs: response.pairs.map((p): [string, Norm] => [p.key, norm(p.value)]).sort(byKey),
  };
}

const EMPTY: Norm = ['empty'];
const ok = (values: Norm[] = [], pairs: [string, Norm][] = []): Outcome => ({ status: 200, message: '', values, pairs });
const fail = (status: number): Outcome => ({ status, message: status === 404 ? 'Not found' : 'error', values: [], pairs: [] });

export class StoreModel {
  readonly tables = new Map<string, Map<string, Norm>>();

  /** Applies `request` to the model and returns the outcome the service must produce. */
  apply(request: CommandRequest): Outcome {
    const data = request.requestData;
    if (data === undefined) return fail(400);
    switch (data.$case) {
      case 'hget': {
        const v = this.#get(data.value.table, data.value.key);
        return v === undefined ? fail(404) : ok([v]);
      }
      case 'hgetall':
        return ok([], Array.from(this.tables.get(data.value.table) ?? [], ([k, v]): [string, Norm] => [k, v]).sort(byKey));
      case 'hmget':
        return ok(data.value.keys.map((k) => this.#get(data.value.table, k) ?? EMPTY));
      case 'hset': {
        const { table, pair } = data.value;
        if (pair === undefined) return fail(400);
        return ok([this.#set(table, pair.key, norm(pair.value))]);
      }
      case 'hmset':
        return ok(data.value.pairs.map((p) => this.#set(data.value.table, p.key, norm(p.value))));
      case 'hdel':
        return ok([this.#del(data.value.table, data.value.key)]);
      case 'hmdel':
        return ok(data.value.keys.map((k) => this.#del(data.value.table, k)));
      case 'hexist':
        return ok([['bool', this.#get(data.value.table, data.value.key) !== undefined]]);
      case 'hmexist':
        return ok(data.value.keys.map((k): Norm => ['bool', this.#get(data.value.table, k) !== undefined]));
      case 'publish':
        // The model runs without subscribers: a publish reaches nobody and succeeds.
        return ok();
      case 'unsubscribe':
        return fail(404);
      case 'subscribe':
        throw new Error('the model does not run subscriptions');
      case 'hlen':
        return ok([['integer', BigInt(this.tables.get(data.value.table)?.size ?? 0)]]);
      case 'hdrop': {
        const n = this.tables.get(data.value.table)?.size ?? 0;
        this.tables.delete(data.value.table);
        return ok([['integer', BigInt(n)]]);
      }
      case 'hscan':
      case 'tables':
        throw new Error('the model does not page (page contents depend on the store)');
    }
  }

  #get(table: string, key: string): Norm | undefined {
    return this.tables.get(table)?.get(key);
  }

  #set(table: string, key: string, value: Norm): Norm {
    let t = this.tables.get(table);
    if (t === undefined) this.tables.set(table, (t = new Map<string, Norm>()));
    const previous = t.get(key) ?? EMPTY;
    t.set(key, value);
    return previous;
  }

  #del(table: string, key: string): Norm {
    const t = this.tables.get(table);
    const previous = t?.get(key);
    t?.delete(key);
    return previous ?? EMPTY;
  }
}
