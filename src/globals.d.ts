/**
 * Declarations the TypeScript library settings (ES2023, @types/node 20) lack but Node 20 has.
 */
declare global {
  interface String {
    /** ES2024: false when the string holds a lone surrogate. */
    isWellFormed(): boolean;
  }
  interface Buffer {
    // Node's native slicers and writers, which `toString`/`write` call after normalizing their
    // arguments; the RESP hot path calls them directly.
    latin1Slice(start: number, end: number): string;
    utf8Slice(start: number, end: number): string;
    latin1Write(text: string, offset: number, length: number): number;
    utf8Write(text: string, offset: number, length: number): number;
  }
}

export {};
