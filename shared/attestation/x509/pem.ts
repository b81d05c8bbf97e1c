/**
 * PEM (RFC 7468) encoding and decoding without Buffer, so it runs in workerd and browsers.
 * Text outside BEGIN/END lines is ignored (RFC 7468 §2 allows explanatory text); inside a block only
 * base64 is accepted: encapsulated headers (RFC 1421 Proc-Type etc.) are refused.
 */
import { fromBase64 } from '../../bytes.ts';
import { ObscuraError } from '../../errors.ts';

export interface PemBlock {
  readonly label: string;
  readonly der: Uint8Array;
}

const BEGIN = /^-----BEGIN ([\x21-\x2C\x2E-\x7E](?:[- ]?[\x21-\x2C\x2E-\x7E])*)?-----$/;
const END = /^-----END ([\x21-\x2C\x2E-\x7E](?:[- ]?[\x21-\x2C\x2E-\x7E])*)?-----$/;
const BASE64_LINE = /^[A-Za-z0-9+/]*={0,2}$/;

/** Every PEM block in `text`, in order. Throws ERR_MALFORMED on an unterminated or garbled block. */
export function decodePemBlocks(text: string): PemBlock[] {
  const blocks: PemBlock[] = [];
  let label: string | undefined;
  let body: string[] = [];
  for (const rawLine of text.split(/\r?\n|\r/)) {
    const line = rawLine.trim();
    if (label === undefined) {
      const begin = BEGIN.exec(line);
      if (begin) {
        label = begin[1] ?? '';
        body = [];
      }
      continue;
    }
    const end = END.exec(line);
    if (end) {
      if ((end[1] ?? '') !== label) {
        throw new ObscuraError('ERR_MALFORMED', `PEM block "${label}" ends with a different label "${end[1] ?? ''}"`);
      }
      const b64 = body.join('');
      if (b64.length === 0 || b64.length % 4 !== 0) {
        throw new ObscuraError('ERR_MALFORMED', `PEM block "${label}" has an empty or truncated base64 body`);
      }
      blocks.push({ label, der: fromBase64(b64) });
      label = undefined;
      continue;
    }
    if (line.length === 0) continue;
    if (!BASE64_LINE.test(line)) {
      throw new ObscuraError('ERR_MALFORMED', `PEM block "${label}" holds a line that is not base64`);
    }
    body.push(line);
  }
  if (label !== undefined) throw new ObscuraError('ERR_MALFORMED', `PEM block "${label}" has no END line`);
  return blocks;
}

/**
 * The DER bodies of all blocks labelled `label` (default CERTIFICATE). A block with any other label
 * is refused rather than skipped, so a private key pasted into a certificate bundle is noticed.
 */
export function decodePem(text: string, label = 'CERTIFICATE'): Uint8Array[] {
  const blocks = decodePemBlocks(text);
  if (blocks.length === 0) throw new ObscuraError('ERR_MALFORMED', `no PEM "${label}" block found`);
  return blocks.map((block) => {
    if (block.label !== label) {
      throw new ObscuraError('ERR_MALFORMED', `expected PEM "${label}", found "${block.label}"`);
    }
    return block.der;
  });
}

/** PEM text for `der`, base64 wrapped at 64 columns, ending with a newline. */
export function encodePem(der: Uint8Array, label = 'CERTIFICATE'): string {
  let bin = '';
  for (let i = 0; i < der.length; i += 0x8000) bin += String.fromCharCode(...der.subarray(i, i + 0x8000));
  const b64 = btoa(bin);
  const lines: string[] = [];
  for (let i = 0; i < b64.length; i += 64) lines.push(b64.slice(i, i + 64));
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}
