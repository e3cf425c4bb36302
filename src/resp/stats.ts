/**
 * Counters behind INFO stats, commandstats and errorstats: per command (calls, time, rejected and
 * failed calls, as Redis counts them), per error code, and for the listener as a whole.
 */

/** One command's counters (Redis's `cmdstat_<name>`). */
export class CommandStats {
  calls = 0;
  /** Microseconds spent executing. */
  usec = 0;
  /** Refused before running (arity, wrong context). */
  rejected = 0;
  /** Ran and replied with an error. */
  failed = 0;

  reset(): void {
    this.calls = 0;
    this.usec = 0;
    this.rejected = 0;
    this.failed = 0;
  }
}

export class RespStats {
  /** By full command name (`client|list`); filled as commands are first used. */
  readonly commands = new Map<string, CommandStats>();
  /** Error replies by their code (`ERR`, `NOPROTO`, …). */
  readonly errors = new Map<string, number>();
  commandsProcessed = 0;
  connectionsReceived = 0;
  rejectedConnections = 0;
  netInputBytes = 0;
  netOutputBytes = 0;
  errorReplies = 0;
  // instantaneous_ops_per_sec: the mean rate over the last 16 samples, one every 100 ms.
  readonly #samples = new Float64Array(16);
  #sampleIndex = 0;
  #lastSampleAt = 0;
  #lastSampleCount = 0;

  /** Records the command rate since the previous sample (called every 100 ms). */
  sample(now: number): void {
    if (this.#lastSampleAt > 0 && now > this.#lastSampleAt) {
      const rate = ((this.commandsProcessed - this.#lastSampleCount) * 1000) / (now - this.#lastSampleAt);
      this.#samples[this.#sampleIndex++ % this.#samples.length] = Math.max(0, rate);
    }
    this.#lastSampleAt = now;
    this.#lastSampleCount = this.commandsProcessed;
  }

  /** Commands per second, averaged over the last samples. */
  opsPerSecond(): number {
    let sum = 0;
    for (const s of this.#samples) sum += s;
    return Math.round(sum / this.#samples.length);
  }

  /** The counters of command `name`, created on first use. */
  command(name: string): CommandStats {
    let s = this.commands.get(name);
    if (s === undefined) this.commands.set(name, (s = new CommandStats()));
    return s;
  }

  /** Counts an error reply under its code (the first word of `text`). */
  error(text: string): void {
    this.errorReplies++;
    const space = text.indexOf(' ');
    const code = space < 0 ? text : text.slice(0, space);
    this.errors.set(code, (this.errors.get(code) ?? 0) + 1);
  }

  /** CONFIG RESETSTAT. */
  reset(): void {
    for (const s of this.commands.values()) s.reset();
    this.errors.clear();
    this.commandsProcessed = 0;
    this.connectionsReceived = 0;
    this.rejectedConnections = 0;
    this.netInputBytes = 0;
    this.netOutputBytes = 0;
    this.errorReplies = 0;
    this.#samples.fill(0);
    this.#lastSampleCount = 0;
  }
}
