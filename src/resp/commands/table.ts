/**
 * The RESP command table: every command the listener knows, by lower-case name, with its
 * subcommands and its statistics. Anything not in it is Redis's unknown-command error.
 */
import type { CommandSpec } from '../command.js';
import type { CommandStats, RespStats } from '../stats.js';
import { connectionCommands } from './connection.js';
import { hashCommands } from './hash.js';
import { introspectionCommands } from './introspection.js';
import { keyCommands } from './keys.js';
import { pubsubCommands } from './pubsub.js';

/** A command as the dispatcher sees it. */
export interface CommandEntry {
  readonly spec: CommandSpec;
  readonly stats: CommandStats;
  readonly subcommands: ReadonlyMap<string, CommandEntry> | undefined;
}

/** Every command spec, in the order COMMAND lists them. */
export const COMMAND_SPECS: readonly CommandSpec[] = [
  ...hashCommands,
  ...keyCommands,
  ...pubsubCommands,
  ...connectionCommands,
  ...introspectionCommands,
];

export class CommandTable {
  readonly #entries = new Map<string, CommandEntry>();

  constructor(stats: RespStats, specs: readonly CommandSpec[] = COMMAND_SPECS) {
    const entry = (spec: CommandSpec): CommandEntry => ({
      spec,
      stats: stats.command(spec.name),
      subcommands:
        spec.subcommands === undefined
          ? undefined
          : new Map(Array.from(spec.subcommands, ([name, sub]) => [name, entry(sub)] as const)),
    });
    for (const spec of specs) this.#entries.set(spec.name, entry(spec));
  }

  /** The command named `name` (lower case). */
  get(name: string): CommandEntry | undefined {
    return this.#entries.get(name);
  }

  /** Every top-level command. */
  all(): IterableIterator<CommandEntry> {
    return this.#entries.values();
  }

  get size(): number {
    return this.#entries.size;
  }
}
