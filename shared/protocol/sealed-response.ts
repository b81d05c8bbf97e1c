/**
 * The sealed response: a sequence of frames, each `u32 length ‖ u32 seq ‖ u8 flags ‖ AES-GCM(ct)`.
 * The header is the associated data and the IV is derived from seq, so dropping, reordering or
 * truncating frames is detected; frame 0 carries the AI code's status and content type (sealed too,
 * since an error status can say something about the prompt); the last frame has the FINAL flag.
 * An answer that is whole before anything is sent (a non-streamed completion, usually) may instead be
 * one frame: frame 0 with the FINAL flag, its head carrying the body too — one seal and one open
 * instead of three.
 */
import { bufferOf, concatBytes } from '../bytes.ts';
import { asRecord, decodeStrict, encodeDeterministic, fieldBytes, fieldInt, fieldString } from '../cbor.ts';
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

  /** The whole answer in one frame: the head with the body, and the authenticated end. */
  complete(status: number, contentType: string, body: Uint8Array): Promise<Uint8Array> {
    if (this.seq !== 0) throw new ObscuraError('ERR_USAGE', 'a complete answer must be the only frame');
    return this.frame(encodeDeterministic({ status, contentType, body }), FLAG_FINAL);
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

  /**
   * Every whole frame that has arrived is checked in order and all of them are decrypted at once
   * (WebCrypto runs them side by side: a non-streamed answer's head, body and end usually come in one
   * chunk); the results are then taken in order, so the events and the first error are those of
   * opening the frames one by one.
   */
  async push(chunk: Uint8Array): Promise<ResponseEvent[]> {
    this.buffered = this.buffered.length ? concatBytes(this.buffered, chunk) : chunk;
    const frames: { seq: number; flags: number; padded: Promise<ArrayBuffer> }[] = [];
    let stop: ObscuraError | undefined; // what opening one by one would throw after the frames before it
    let offset = 0;
    let seq = this.expectedSeq;
    let final = this.ended;
    while (this.buffered.length - offset >= FRAME_HEADER_BYTES) {
      const dv = new DataView(this.buffered.buffer, this.buffered.byteOffset + offset, FRAME_HEADER_BYTES);
      const length = dv.getUint32(0);
      const frameSeq = dv.getUint32(4);
      const flags = this.buffered[offset + 8];
      if (length > MAX_FRAME_BYTES || length < 16) {
        stop = new ObscuraError('ERR_MALFORMED', 'sealed frame length is out of range');
        break;
      }
      if (this.buffered.length - offset < FRAME_HEADER_BYTES + length) break;
      if (final) {
        stop = new ObscuraError('ERR_MALFORMED', 'bytes follow the final sealed frame');
        break;
      }
      if (frameSeq !== seq) {
        stop = new ObscuraError('ERR_STREAM_REORDERED', `sealed frame ${frameSeq} arrived where frame ${seq} was expected`);
        break;
      }
      const header = this.buffered.subarray(offset, offset + FRAME_HEADER_BYTES);
      const ct = this.buffered.subarray(offset + FRAME_HEADER_BYTES, offset + FRAME_HEADER_BYTES + length);
      const padded = crypto.subtle.decrypt(
        { name: 'AES-GCM', iv: bufferOf(frameIv(this.ivBase, frameSeq)), additionalData: bufferOf(header) },
        this.key,
        bufferOf(ct),
      );
      padded.catch(() => {}); // taken in order below; an earlier failure must not leave this one unheard
      offset += FRAME_HEADER_BYTES + length;
      frames.push({ seq: frameSeq, flags, padded });
      seq++;
      final = (flags & FLAG_FINAL) !== 0; // trusted only once this frame opens
    }
    const events: ResponseEvent[] = [];
    for (const f of frames) {
      let padded: Uint8Array;
      try {
        padded = new Uint8Array(await f.padded);
      } catch (cause) {
        throw new ObscuraError('ERR_OPEN_FAILED', `sealed frame ${f.seq} does not open: bytes were changed`, { cause });
      }
      this.expectedSeq++;
      const content = unpad(padded);
      const final = (f.flags & FLAG_FINAL) !== 0;
      if (f.seq === 0) {
        // A final head carries the whole body; any other head carries none.
        const head = asRecord(decodeStrict(content, 'response head'), 'response head');
        events.push({ type: 'head', status: fieldInt(head, 'status', 'response head'), contentType: fieldString(head, 'contentType', 'response head') });
        if (final) {
          const body = fieldBytes(head, 'body', 'response head');
          if (body.length > 0) events.push({ type: 'data', bytes: body });
        } else if (head.body !== undefined) {
          throw new ObscuraError('ERR_MALFORMED', 'response head.body is only allowed in a final head frame');
        }
      } else if (!final) {
        events.push({ type: 'data', bytes: content });
      }
      if (final) {
        this.ended = true;
        events.push({ type: 'end' });
      }
    }
    this.buffered = this.buffered.subarray(offset);
    if (stop) throw stop;
    return events;
  }

  /** The body ended: anything short of an authenticated final frame is a truncated stream. */
  finish(): void {
    if (!this.ended || this.buffered.length > 0) {
      throw new ObscuraError('ERR_STREAM_TRUNCATED', 'the sealed response ended before its authenticated final frame');
    }
  }
}
