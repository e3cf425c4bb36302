/**
 * The frame format's constants (SPEC 1.2), apart from any codec so that every implementation —
 * the server's, the Node client's, a browser's — reads them from one place without pulling in
 * Node's zlib.
 */

/** Messages whose encoded size exceeds this are sent gzip-compressed (1500 MTU − headers). */
export const COMPRESSION_THRESHOLD = 1436;
/** Default maximum frame (and inflated payload) size: 64 MiB. */
export const DEFAULT_MAX_FRAME_SIZE = 64 * 1024 * 1024;
/** The largest length a header can express. */
export const MAX_ENCODABLE_LENGTH = 0x7fff_ffff;
/** Bytes of the frame header. */
export const FRAME_HEADER_SIZE = 4;
/** Header bit 31: the payload is gzip-compressed. */
export const GZIP_FLAG = 0x8000_0000;
