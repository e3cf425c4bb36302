/**
 * Strings as bytes for the persistent store: UTF-8, extended (WTF-8) so that a string holding lone
 * surrogates round-trips exactly instead of being altered to U+FFFD.
 *
 * Well-formed strings — everything protobuf clients can send — encode to plain UTF-8, so the
 * on-disk layout is unchanged for them. Lone surrogates come from the RESP listener, which names
 * tables and keys that are not valid UTF-8 with them (src/resp/names.ts); each is written as the
 * three-byte sequence UTF-8 would use were it allowed (ED A0–BF xx), which valid UTF-8 never
 * contains, so decoding is unambiguous and never starts with the 0xFF byte the layout reserves.
 */

/** The bytes of `text`: UTF-8, with lone surrogates as their three-byte sequences. */
export function textBytes(text: string): Buffer {
  if (text.isWellFormed()) return Buffer.from(text, 'utf8');
  const out: number[] = [];
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
      const d = text.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        const cp = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
        out.push(0xf0 | (cp >> 18), 0x80 | ((cp >> 12) & 0x3f), 0x80 | ((cp >> 6) & 0x3f), 0x80 | (cp & 0x3f));
        i++;
        continue;
      }
    }
    if (c < 0x80) out.push(c);
    else if (c < 0x800) out.push(0xc0 | (c >> 6), 0x80 | (c & 0x3f));
    else out.push(0xe0 | (c >> 12), 0x80 | ((c >> 6) & 0x3f), 0x80 | (c & 0x3f));
  }
  return Buffer.from(out);
}

/** The string `bytes[start…]` encodes (the inverse of {@link textBytes}). */
export function bytesText(bytes: Buffer, start = 0): string {
  let surrogate = -1;
  for (let i = bytes.indexOf(0xed, start); i >= 0 && i + 1 < bytes.length; i = bytes.indexOf(0xed, i + 1)) {
    if (bytes[i + 1] >= 0xa0 && bytes[i + 1] <= 0xbf) {
      surrogate = i;
      break;
    }
  }
  if (surrogate < 0) return bytes.toString('utf8', start);
  let out = '';
  let from = start;
  for (let i = surrogate; i + 2 < bytes.length; i++) {
    if (bytes[i] !== 0xed || bytes[i + 1] < 0xa0 || bytes[i + 1] > 0xbf) continue;
    out += bytes.toString('utf8', from, i) + String.fromCharCode(0xd000 | ((bytes[i + 1] & 0x3f) << 6) | (bytes[i + 2] & 0x3f));
    i += 2;
    from = i + 1;
  }
  return out + bytes.toString('utf8', from);
}
