/** A bounds-checked little-endian cursor over evidence bytes (TDX quotes, SPDM messages): every overrun is ERR_MALFORMED, never a RangeError. */
import { ObscuraError } from '../errors.ts';

export class ByteReader {
  readonly bytes: Uint8Array;
  offset = 0;

  constructor(bytes: Uint8Array) {
    this.bytes = bytes;
  }

  get remaining(): number {
    return this.bytes.length - this.offset;
  }

  /** A copy, so the parsed struct never aliases (or is changed through) the caller's buffer. */
  take(length: number, what: string): Uint8Array {
    if (length > this.remaining) {
      throw new ObscuraError('ERR_MALFORMED', `${what}: needs ${length} bytes at offset ${this.offset}, ${this.remaining} left`);
    }
    const out = this.bytes.slice(this.offset, this.offset + length);
    this.offset += length;
    return out;
  }

  u8(what: string): number {
    return this.take(1, what)[0];
  }

  u16(what: string): number {
    const b = this.take(2, what);
    return b[0] | (b[1] << 8);
  }

  u32(what: string): number {
    const b = this.take(4, what);
    return (b[0] | (b[1] << 8) | (b[2] << 16) | (b[3] << 24)) >>> 0;
  }

  u24(what: string): number {
    const b = this.take(3, what);
    return b[0] | (b[1] << 8) | (b[2] << 16);
  }

  /** Reads a reserved field and fails unless it is all zero. */
  reserved(length: number, what: string): void {
    const b = this.take(length, what);
    for (const x of b) {
      if (x !== 0) throw new ObscuraError('ERR_RESERVED_NONZERO', `${what} is reserved and must be zero`);
    }
  }

  /** Fails unless every byte was consumed: trailing bytes would be unsigned or unparsed data. */
  end(what: string): void {
    if (this.remaining !== 0) {
      throw new ObscuraError('ERR_MALFORMED', `${what}: ${this.remaining} trailing bytes at offset ${this.offset}`);
    }
  }
}
