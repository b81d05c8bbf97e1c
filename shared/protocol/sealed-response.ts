/**
 * The sealed response: a sequence of frames, each `u32 length ‖ u32 seq ‖ u8 flags ‖ AES-GCM(ct)`.
 * The header is the associated data and the IV is derived from seq, so dropping, reordering or
 * truncating frames is detected; frame 0 carries the AI code's status and content type (sealed too,
 * since an error status can say something about the prompt); the last frame has the FINAL flag.
 */
import { bufferOf, concatBytes } from '../bytes.ts';
import { asRecord, decodeStrict, encodeDeterministic, fieldInt, fieldString } from '../cbor.ts';
import { ObscuraError } from '../errors.ts';
import { MAX_FRAME_BYTES } from './constants.ts';
import { DEFAULT_PADDING_BUCKETS_BYTES, pad, unpad } from './padding.ts';
import { frameIv } from './request-keys.ts';

const FRAME_HEADER_BYTES = 9;
const FLAG_FINAL = 0x01;

export type ResponseEvent =
  | { type: 'head'; status: number; contentType: string }
  | { type: 'data'; bytes: Uint8Array }
  | { type: 'end' };

function frameHeader(length: number, seq: number, flags: number): Uint8Array {
  const h = new Uint8Array(FRAME_HEADER_BYTES);
  const dv = new DataView(h.buffer);
  dv.setUint32(0, length);
  dv.setUint32(4, seq);
  h[8] = flags;
  return h;
}

/** Seals one response, frame by frame. Not reusable across responses: the key is per request. */
export class ResponseSealer {
  private seq = 0;
  private finished = false;

  constructor(
    private readonly key: CryptoKey,
    private readonly ivBase: Uint8Array,
    private readonly paddingBuckets: readonly number[] = DEFAULT_PADDING_BUCKETS_BYTES,
  ) {}

  head(status: number, contentType: string): Promise<Uint8Array> {
    if (this.seq !== 0) throw new ObscuraError('ERR_USAGE', 'the head frame must come first');
    return this.frame(encodeDeterministic({ status, contentType }), 0);
  }

  data(bytes: Uint8Array): Promise<Uint8Array> {
    if (this.seq === 0) throw new ObscuraError('ERR_USAGE', 'a data frame cannot precede the head frame');
    return this.frame(bytes, 0);
  }

  /** The authenticated end: without it the receiver reports a truncated stream. */
  end(): Promise<Uint8Array> {
    return this.frame(new Uint8Array(0), FLAG_FINAL);
  }

  private async frame(content: Uint8Array, flags: number): Promise<Uint8Array> {
    if (this.finished) throw new ObscuraError('ERR_USAGE', 'the response is already finished');
    if (flags & FLAG_FINAL) this.finished = true;
    const seq = this.seq++;
    const plaintext = pad(content, this.paddingBuckets);
    const length = plaintext.length + 16; // AES-GCM tag
    const header = frameHeader(length, seq, flags);
    const ct = await crypto.subtle.encrypt(
      { name: 'AES-GCM', iv: bufferOf(frameIv(this.ivBase, seq)), additionalData: bufferOf(header) },
      this.key,
      bufferOf(plaintext),
    );
    return concatBytes(header, new Uint8Array(ct));
  }
}

/** Opens a sealed response from byte chunks as they arrive; call finish() when the body ends. */
export class ResponseOpener {
  private buffered: Uint8Array = new Uint8Array(0);
  private expectedSeq = 0;
  private ended = false;

  constructor(
    private readonly key: CryptoKey,
    private readonly ivBase: Uint8Array,
  ) {}

  get complete(): boolean {
    return this.ended;
  }

  async push(chunk: Uint8Array): Promise<ResponseEvent[]> {
    this.buffered = this.buffered.length ? concatBytes(this.buffered, chunk) : chunk;
    const events: ResponseEvent[] = [];
    while (this.buffered.length >= FRAME_HEADER_BYTES) {
      const dv = new DataView(this.buffered.buffer, this.buffered.byteOffset, FRAME_HEADER_BYTES);
      const length = dv.getUint32(0);
      const seq = dv.getUint32(4);
      const flags = this.buffered[8];
      if (length > MAX_FRAME_BYTES || length < 16) throw new ObscuraError('ERR_MALFORMED', 'sealed frame length is out of range');
      if (this.buffered.length < FRAME_HEADER_BYTES + length) break;
      if (this.ended) throw new ObscuraError('ERR_MALFORMED', 'bytes follow the final sealed frame');
      if (seq !== this.expectedSeq) {
        throw new ObscuraError('ERR_STREAM_REORDERED', `sealed frame ${seq} arrived where frame ${this.expectedSeq} was expected`);
      }
      const header = this.buffered.subarray(0, FRAME_HEADER_BYTES);
      const ct = this.buffered.subarray(FRAME_HEADER_BYTES, FRAME_HEADER_BYTES + length);
      let padded: Uint8Array;
      try {
        padded = new Uint8Array(
          await crypto.subtle.decrypt(
            { name: 'AES-GCM', iv: bufferOf(frameIv(this.ivBase, seq)), additionalData: bufferOf(header) },
            this.key,
            bufferOf(ct),
          ),
        );
      } catch (cause) {
        throw new ObscuraError('ERR_OPEN_FAILED', `sealed frame ${seq} does not open: bytes were changed`, { cause });
      }
      this.buffered = this.buffered.subarray(FRAME_HEADER_BYTES + length);
      this.expectedSeq++;
      const content = unpad(padded);
      if (flags & FLAG_FINAL) {
        if (seq === 0) throw new ObscuraError('ERR_MALFORMED', 'the final frame cannot be the head frame');
        this.ended = true;
        events.push({ type: 'end' });
      } else if (seq === 0) {
        const head = asRecord(decodeStrict(content, 'response head'), 'response head');
        events.push({ type: 'head', status: fieldInt(head, 'status', 'response head'), contentType: fieldString(head, 'contentType', 'response head') });
      } else {
        events.push({ type: 'data', bytes: content });
      }
    }
    return events;
  }

  /** The body ended: anything short of an authenticated final frame is a truncated stream. */
  finish(): void {
    if (!this.ended || this.buffered.length > 0) {
      throw new ObscuraError('ERR_STREAM_TRUNCATED', 'the sealed response ended before its authenticated final frame');
    }
  }
}
