/**
 * In-process crypto measurements: the protocol's response sealing of 1 MiB of SSE-shaped events against
 * raw AES-256-GCM on the same bytes, and the per-request crypto stages (seal, HKDF, open) in µs.
 */
import { randomBytes as nodeRandomBytes } from 'node:crypto';

const randomBytes = (n: number) => new Uint8Array(nodeRandomBytes(n));
import { bufferOf } from '../../../shared/bytes.ts';
import { importInferenceSecret, deriveRequestKeys } from '../../../shared/protocol/request-keys.ts';
import { openRequest, parseSealedRequest, sealRequest, splitRoutingFields } from '../../../shared/protocol/sealed-request.ts';
import { ResponseOpener, ResponseSealer } from '../../../shared/protocol/sealed-response.ts';
import { chatBody, MODEL } from './paths.ts';
import { median, round, spreadOf, summarize, type Spread } from './stats.ts';

const MIB = 1024 * 1024;
const WORDS = 'the sea was calm and the white whale rose from the deep while ishmael watched in silence , wondering .'.split(' ');

/** Events shaped like the sample AI code's chat.completion.chunk lines, 150-250 bytes each, 1 MiB in all. */
export function sseEvents(totalBytes = MIB): Uint8Array[] {
  const enc = new TextEncoder();
  const id = `chatcmpl-${nodeRandomBytes(12).toString('hex')}`;
  const created = Math.floor(Date.now() / 1000);
  const events: Uint8Array[] = [];
  let size = 0;
  let seed = 1;
  const rand = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
  const make = (content: string) =>
    `data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created, model: MODEL, choices: [{ index: 0, delta: { content }, logprobs: null, finish_reason: null }] })}\n\n`;
  while (size < totalBytes) {
    // Most events carry one word (as the sample emits); some carry a few, up to ~250 bytes.
    const target = 150 + Math.floor(rand() * 100);
    let content = '';
    let text = make(content);
    while (text.length < target) {
      const next = content + (content ? ' ' : '') + WORDS[Math.floor(rand() * WORDS.length)];
      if (make(next).length > 250) break;
      content = next;
      text = make(content);
    }
    const bytes = enc.encode(text);
    events.push(bytes);
    size += bytes.length;
  }
  return events;
}

async function aesKey(): Promise<CryptoKey> {
  return crypto.subtle.importKey('raw', randomBytes(32), 'AES-GCM', false, ['encrypt', 'decrypt']);
}

/** ResponseSealer over the events, one frame per event (head and authenticated end included). */
async function sealAll(key: CryptoKey, ivBase: Uint8Array, events: Uint8Array[]): Promise<number> {
  const t0 = performance.now();
  const sealer = new ResponseSealer(key, ivBase);
  await sealer.head(200, 'text/event-stream');
  for (const ev of events) await sealer.data(ev);
  await sealer.end();
  return performance.now() - t0;
}

/** Raw WebCrypto AES-256-GCM, one encrypt per event with a counter IV: the floor for per-event sealing. */
async function rawPerEvent(key: CryptoKey, events: Uint8Array[]): Promise<number> {
  const iv = new Uint8Array(12);
  const dv = new DataView(iv.buffer);
  const t0 = performance.now();
  let seq = 0;
  for (const ev of events) {
    dv.setUint32(8, seq++);
    await crypto.subtle.encrypt({ name: 'AES-GCM', iv }, key, bufferOf(ev));
  }
  return performance.now() - t0;
}

async function rawOneShot(key: CryptoKey, whole: Uint8Array): Promise<number> {
  const t0 = performance.now();
  await crypto.subtle.encrypt({ name: 'AES-GCM', iv: new Uint8Array(12) }, key, bufferOf(whole));
  return performance.now() - t0;
}

export interface SealBench {
  events: number;
  meanEventBytes: number;
  sealMiBps: number;
  rawPerEventMiBps: number;
  rawOneShotMiBps: number;
  ratio: number; // seal ÷ raw per event (median of runs' ratios)
  ratioSpread: Spread;
  ratioVsOneShot: number;
  ratioVsOneShotSpread: Spread;
  sealUsPerEvent: number;
  rawUsPerEvent: number;
}

export async function sealThroughput(runs: number): Promise<SealBench> {
  const events = sseEvents();
  const whole = new Uint8Array(events.reduce((a, e) => a + e.length, 0));
  let o = 0;
  for (const e of events) whole.set(e, (o += e.length) - e.length);
  const key = await aesKey();
  const ivBase = randomBytes(12);
  // Warm up: JIT and WebCrypto paths.
  for (let i = 0; i < 2; i++) {
    await sealAll(key, ivBase, events);
    await rawPerEvent(key, events);
    await rawOneShot(key, whole);
  }
  const seal: number[] = [];
  const raw: number[] = [];
  const one: number[] = [];
  for (let r = 0; r < runs; r++) {
    // Interleaved, so drift in the machine's load hits all three alike.
    seal.push(await sealAll(key, ivBase, events));
    raw.push(await rawPerEvent(key, events));
    one.push(await rawOneShot(key, whole));
  }
  const mibps = (ms: number) => whole.length / MIB / (ms / 1000);
  const ratios = seal.map((s, i) => raw[i] / s);
  const ratiosOne = seal.map((s, i) => one[i] / s);
  return {
    events: events.length,
    meanEventBytes: round(whole.length / events.length, 1),
    sealMiBps: round(mibps(median(seal)), 1),
    rawPerEventMiBps: round(mibps(median(raw)), 1),
    rawOneShotMiBps: round(mibps(median(one)), 1),
    ratio: round(median(ratios)),
    ratioSpread: spreadOf(ratios),
    ratioVsOneShot: round(median(ratiosOne), 4),
    ratioVsOneShotSpread: spreadOf(ratiosOne),
    sealUsPerEvent: round((median(seal) * 1000) / events.length, 2),
    rawUsPerEvent: round((median(raw) * 1000) / events.length, 2),
  };
}

/** Per-request crypto, in µs (median of many): what the SDK and the worker each do for one request. */
export async function cryptoStages(iterations = 300): Promise<Record<string, number>> {
  const secretKey = await importInferenceSecret(randomBytes(32));
  const sid = randomBytes(16);
  const { routing, rest } = splitRoutingFields(chatBody(64, false));
  const body = new TextEncoder().encode(JSON.stringify(rest));
  // A 64-token non-streamed answer is ~600 bytes of JSON.
  const answer = new TextEncoder().encode(JSON.stringify({ id: 'chatcmpl-x', object: 'chat.completion', choices: [{ index: 0, message: { role: 'assistant', content: 'word '.repeat(64) } }], usage: {} }).padEnd(620));
  const t: Record<string, number[]> = {
    hkdf_derive_request_keys: [],
    seal_request: [],
    parse_and_open_request: [],
    seal_response_complete_frame: [],
    open_response_complete_frame: [],
    seal_response_3_frames: [],
    open_response_3_frames: [],
  };
  const time = async (name: string, fn: () => Promise<unknown>) => {
    const t0 = performance.now();
    const r = await fn();
    t[name].push((performance.now() - t0) * 1000);
    return r;
  };
  for (let i = 0; i < iterations + 30; i++) {
    await time('hkdf_derive_request_keys', () => deriveRequestKeys(secretKey, randomBytes(16)));
    const sealed = (await time('seal_request', () => sealRequest({ secretKey, secretId: sid, method: 'POST', path: '/v1/chat/completions', routing, body, now: Date.now() }))) as Awaited<ReturnType<typeof sealRequest>>;
    const opened = (await time('parse_and_open_request', async () => openRequest(parseSealedRequest(sealed.bytes), secretKey))) as Awaited<ReturnType<typeof openRequest>>;
    // What a whole non-streamed answer takes (one complete frame), and a head, a data frame and an end.
    const complete = (await time('seal_response_complete_frame', () => new ResponseSealer(opened.keys.responseKey, opened.keys.responseIvBase).complete(200, 'application/json', answer))) as Uint8Array;
    await time('open_response_complete_frame', async () => {
      const o = new ResponseOpener(sealed.keys.responseKey, sealed.keys.responseIvBase);
      await o.push(complete);
      o.finish();
    });
    const frames = (await time('seal_response_3_frames', async () => {
      const s = new ResponseSealer(opened.keys.responseKey, opened.keys.responseIvBase);
      return [await s.head(200, 'application/json'), await s.data(answer), await s.end()];
    })) as Uint8Array[];
    await time('open_response_3_frames', async () => {
      const o = new ResponseOpener(sealed.keys.responseKey, sealed.keys.responseIvBase);
      for (const f of frames) await o.push(f);
      o.finish();
    });
  }
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(t)) out[`${k}_us`] = round(summarize(v.slice(30)).p50, 1);
  return out;
}
