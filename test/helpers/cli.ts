/** Runs the real `protokv` binary: servers as child processes, client commands to completion. */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';

export const BIN = fileURLToPath(new URL('../../../bin/protokv.js', import.meta.url));

/**
 * Servers started by tests let the OS pick their HTTP port: several test runs share this machine,
 * and the default port would make them collide. An `--http` flag or `PROTOKV_HTTP` given by a test wins.
 */
const SERVER_ENV: NodeJS.ProcessEnv = { PROTOKV_HTTP: '127.0.0.1:0' };

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `protokv ...args` to completion, with `input` (if given) on its standard input. */
export function runCli(args: string[], env: NodeJS.ProcessEnv = {}, input?: string | Buffer): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const serverEnv = args[0] === 'serve' ? SERVER_ENV : {};
    const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, ...serverEnv, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
    child.stdin.on('error', () => {});
    child.stdin.end(input);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

export interface ServerProcess {
  child: ChildProcess;
  address: string;
  port: number;
  /** The HTTP listener's base URL (`http://127.0.0.1:PORT`), or `undefined` when it is off. */
  http: string | undefined;
  /** Every log line so far, parsed. */
  logs: Record<string, unknown>[];
  /** Sends `signal` and resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Starts `protokv serve ...args` (port 0 unless given) and waits for its "listening" line. */
export function startServerProcess(args: string[], env: NodeJS.ProcessEnv = {}): Promise<ServerProcess> {
  const child = spawn(process.execPath, [BIN, 'serve', ...args], {
    env: { ...process.env, ...SERVER_ENV, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: Record<string, unknown>[] = [];
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return new Promise((resolve, reject) => {
    createInterface({ input: child.stdout }).on('line', (line) => {
      let entry: Record<string, unknown>;
      try {
        entry = JSON.parse(line) as Record<string, unknown>;
      } catch {
        return;
      }
      logs.push(entry);
      if (entry.msg === 'listening') {
        const address = String(entry.address);
        resolve({
          child,
          address,
          port: Number(address.slice(address.lastIndexOf(':') + 1)),
          http: entry.http === 'off' ? undefined : String(entry.http),
          logs,
          stop: (signal = 'SIGTERM') => {
            child.kill(signal);
            return exited;
          },
        });
      }
    });
    void exited.then((code) => reject(new Error(`server exited with ${code} before listening: ${stderr}`)));
  });
}
