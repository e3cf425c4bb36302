/**
 * Node's own string methods of `Buffer`, which `toString(encoding, start, end)` and
 * `write(string, offset, length, encoding)` call after checking their arguments and looking up
 * the encoding. The codec's bounds are checked already, and on the server's hottest path (two or
 * more strings per request and per response) that detour costs about a third of decoding a
 * short string. They exist on every Buffer in every supported Node version, though not in the
 * typings; the codec's tests cover every use.
 */
interface NativeStringMethods {
  latin1Slice(start: number, end: number): string;
  utf8Slice(start: number, end: number): string;
  utf8Write(s: string, offset: number, length: number): number;
}

/** Bytes `[start, end)` of `buf`, which must be ASCII (or Latin-1), as a string. */
export function latin1Slice(buf: Buffer, start: number, end: number): string {
  return (buf as unknown as NativeStringMethods).latin1Slice(start, end);
}

/** Bytes `[start, end)` of `buf` as UTF-8 (invalid sequences become U+FFFD). */
export function utf8Slice(buf: Buffer, start: number, end: number): string {
  return (buf as unknown as NativeStringMethods).utf8Slice(start, end);
}

/** Writes `s` as UTF-8 at `offset`, at most `length` bytes; returns the bytes written. */
export function utf8Write(buf: Buffer, s: string, offset: number, length: number): number {
  return (buf as unknown as NativeStringMethods).utf8Write(s, offset, length);
}
