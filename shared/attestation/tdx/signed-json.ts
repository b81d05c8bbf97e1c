/**
 * Intel PCS signs the bytes of one member's value inside a JSON document exactly as served (e.g. the
 * `tcbInfo` value of {"tcbInfo":{...},"signature":"..."}), not a canonical re-serialisation. So the
 * value is sliced out of the raw text by a structural scan, and only those bytes are verified.
 */
import { ObscuraError } from '../../errors.ts';
import { fromHex, fromUtf8 } from '../../bytes.ts';

export interface SignedJsonMember {
  /** The member's value, byte for byte as served: what the signature covers. */
  readonly signedBytes: Uint8Array;
  /** The same value, parsed. */
  readonly value: unknown;
  /** The document's "signature" member: raw r || s. */
  readonly signature: Uint8Array;
}

/** The collateral documents are a few KiB; this bounds the scan on hostile input. */
export const SIGNED_JSON_MAX_BYTES = 1 << 20;

const WS = new Set([0x20, 0x09, 0x0a, 0x0d]);
const QUOTE = 0x22;
const BACKSLASH = 0x5c;

function malformed(what: string, message: string): never {
  throw new ObscuraError('ERR_MALFORMED', `${what}: ${message}`);
}

/**
 * Splits a top-level JSON object into member spans. Run only on text JSON.parse has accepted, so only
 * the top level is scanned; inside a value only strings and nesting are tracked, which is enough to
 * find where it ends (JSON's structural bytes are ASCII and never appear inside a UTF-8 sequence).
 */
function topLevelMembers(bytes: Uint8Array, what: string): Map<string, [number, number]> {
  let i = 0;
  const skipWs = (): void => {
    while (i < bytes.length && WS.has(bytes[i])) i++;
  };
  const scanString = (): void => {
    // at the opening quote
    i++;
    while (i < bytes.length && bytes[i] !== QUOTE) i += bytes[i] === BACKSLASH ? 2 : 1;
    if (i >= bytes.length) malformed(what, 'unterminated string');
    i++;
  };
  const scanValue = (): void => {
    if (bytes[i] === QUOTE) return scanString();
    if (bytes[i] === 0x7b || bytes[i] === 0x5b) {
      let depth = 0;
      while (i < bytes.length) {
        const c = bytes[i];
        if (c === QUOTE) {
          scanString();
          continue;
        }
        i++;
        if (c === 0x7b || c === 0x5b) depth++;
        else if ((c === 0x7d || c === 0x5d) && --depth === 0) return;
      }
      malformed(what, 'unterminated value');
    }
    // number, true, false, null: up to the next structural byte
    while (i < bytes.length && !WS.has(bytes[i]) && bytes[i] !== 0x2c && bytes[i] !== 0x7d) i++;
  };

  const members = new Map<string, [number, number]>();
  skipWs();
  if (bytes[i] !== 0x7b) malformed(what, 'not a JSON object');
  i++;
  skipWs();
  if (bytes[i] === 0x7d) malformed(what, 'empty object');
  for (;;) {
    skipWs();
    if (bytes[i] !== QUOTE) malformed(what, 'expected a member name');
    const keyStart = i;
    scanString();
    const key = JSON.parse(fromUtf8(bytes.subarray(keyStart, i))) as string;
    skipWs();
    if (bytes[i] !== 0x3a) malformed(what, 'expected ":"');
    i++;
    skipWs();
    const start = i;
    scanValue();
    if (members.has(key)) malformed(what, `member "${key}" appears twice`);
    members.set(key, [start, i]);
    skipWs();
    if (bytes[i] === 0x2c) {
      i++;
      continue;
    }
    if (bytes[i] === 0x7d) {
      i++;
      break;
    }
    malformed(what, 'expected "," or "}"');
  }
  skipWs();
  if (i !== bytes.length) malformed(what, 'text after the object');
  return members;
}

/**
 * Returns the raw bytes and parsed value of `member`, and the hex `signature` member decoded.
 * Throws ERR_MALFORMED on anything that is not exactly one JSON object with both.
 */
export function sliceSignedMember(document: string | Uint8Array, member: string, what: string): SignedJsonMember {
  const bytes = typeof document === 'string' ? new TextEncoder().encode(document) : document;
  if (!(bytes instanceof Uint8Array)) malformed(what, 'must be a string or bytes');
  if (bytes.length > SIGNED_JSON_MAX_BYTES) malformed(what, `larger than ${SIGNED_JSON_MAX_BYTES} bytes`);
  const text = fromUtf8(bytes);
  let whole: unknown;
  try {
    whole = JSON.parse(text);
  } catch (cause) {
    throw new ObscuraError('ERR_MALFORMED', `${what}: not JSON`, { cause });
  }
  if (typeof whole !== 'object' || whole === null || Array.isArray(whole)) malformed(what, 'not a JSON object');
  const spans = topLevelMembers(bytes, what);
  if (spans.size !== 2 || !spans.has(member) || !spans.has('signature')) {
    malformed(what, `expected exactly the members "${member}" and "signature"`);
  }
  const [start, end] = spans.get(member)!;
  const signedBytes = bytes.slice(start, end);
  // Parse the slice on its own: what is verified is exactly what is used.
  const value = JSON.parse(fromUtf8(signedBytes)) as unknown;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) malformed(what, `"${member}" is not an object`);
  const sigHex = (whole as Record<string, unknown>).signature;
  if (typeof sigHex !== 'string' || sigHex.length !== 128) malformed(what, '"signature" is not 64 bytes of hex');
  return { signedBytes, value, signature: fromHex(sigHex) };
}
