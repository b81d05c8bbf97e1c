// Writes a tiny llama-architecture model as a GGUF v3 file (https://github.com/ggml-org/ggml/blob/master/docs/gguf.md),
// deterministically from a seed: random weights, a small SentencePiece-style ("llama") vocabulary and every
// hyperparameter llama.cpp requires. It generates gibberish, but it is a real model for a real engine,
// so the llama AI code can be tested and measured without downloading anything. Never committed: made
// at `obscura up` and test time.
//
//   node make-gguf.mjs OUT.gguf [--seed N] [--layers N] [--embd N] [--heads N] [--heads-kv N] [--ff N] [--type f32|f16]
import { renameSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const DEFAULT_GGUF_OPTIONS = Object.freeze({ seed: 1, layers: 2, embd: 128, heads: 4, headsKv: 2, ff: 256, contextLength: 2048, type: 'f32' });

const GGUF_MAGIC = 0x46554747; // "GGUF" little-endian
const GGUF_VERSION = 3;
const ALIGNMENT = 32;
// GGUF metadata value types.
const T = { u32: 4, i32: 5, f32: 6, bool: 7, string: 8, array: 9 };
// ggml tensor types.
const GGML_F32 = 0;
const GGML_F16 = 1;
// llama.cpp token types.
const TOKEN_NORMAL = 1;
const TOKEN_UNKNOWN = 2;
const TOKEN_CONTROL = 3;
const TOKEN_BYTE = 6;
const SPACE = '\u2581'; // SentencePiece's word-start marker

// Words whose every prefix is a token too, so the SentencePiece merge (pairs whose concatenation is a
// token, best score first) can reach them; anything else falls back to characters and byte tokens.
const WORDS = (
  'the of and to in is was he that it for on with as his at by had not be but from are this which you her she ' +
  'they all were we one there an when so said my what sea ship old man day time little long into more upon over ' +
  'like very no about could would some them then now only any up out if its their who been will do did how good ' +
  'great well way tell me know see must think way away came come again never whale alice house light water night ' +
  'hello world answer question private secret model token'
).split(' ');

function prng(seed) {
  // splitmix32: tiny, deterministic, good enough for random weights.
  let s = seed >>> 0;
  return () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    z = (z ^ (z >>> 16)) >>> 0;
    return z / 0x100000000;
  };
}

export function vocabulary() {
  const tokens = ['<unk>', '<s>', '</s>'];
  const types = [TOKEN_UNKNOWN, TOKEN_CONTROL, TOKEN_CONTROL];
  const scores = [0, 0, 0];
  for (let b = 0; b < 256; b++) {
    tokens.push(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
    types.push(TOKEN_BYTE);
    scores.push(0);
  }
  const normal = new Set([SPACE, ...'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,;:!?\'"-()']);
  for (const w of [...new Set(WORDS)].sort()) for (let i = 2; i <= w.length + 1; i++) normal.add((SPACE + w).slice(0, i));
  let rank = 0;
  for (const t of normal) {
    tokens.push(t);
    types.push(TOKEN_NORMAL);
    // Longer pieces merge first; ties break by insertion order.
    scores.push(-1000 + [...t].length * 10 - rank++ / 1000);
  }
  return { tokens, types, scores };
}

function float16Bits(f) {
  const buf = new DataView(new ArrayBuffer(4));
  buf.setFloat32(0, f);
  const x = buf.getUint32(0);
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rem > mid || (rem === mid && half & 1)) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && half & 1)) half++;
  return sign | half;
}

class Writer {
  chunks = [];
  size = 0;
  push(b) {
    this.chunks.push(b);
    this.size += b.length;
  }
  u32(v) { const b = Buffer.alloc(4); b.writeUInt32LE(v); this.push(b); }
  i32(v) { const b = Buffer.alloc(4); b.writeInt32LE(v); this.push(b); }
  u64(v) { const b = Buffer.alloc(8); b.writeBigUInt64LE(BigInt(v)); this.push(b); }
  f32(v) { const b = Buffer.alloc(4); b.writeFloatLE(v); this.push(b); }
  str(s) { const b = Buffer.from(s, 'utf8'); this.u64(b.length); this.push(b); }
  pad(align) { const n = (align - (this.size % align)) % align; if (n) this.push(Buffer.alloc(n)); }
  value(type, v) {
    if (type === 'u32') this.u32(v);
    else if (type === 'i32') this.i32(v);
    else if (type === 'f32') this.f32(v);
    else if (type === 'bool') this.push(Buffer.from([v ? 1 : 0]));
    else if (type === 'string') this.str(v);
    else throw new Error(`unknown GGUF type ${type}`);
  }
  kv(key, type, v) {
    this.str(key);
    if (type.endsWith('[]')) {
      const el = type.slice(0, -2);
      this.u32(T.array);
      this.u32(T[el]);
      this.u64(v.length);
      for (const x of v) this.value(el, x);
    } else {
      this.u32(T[type]);
      this.value(type, v);
    }
  }
}

/** The GGUF file's bytes: the same options (seed included) always give the same bytes. */
export function makeGguf(options = {}) {
  const o = { ...DEFAULT_GGUF_OPTIONS, ...options };
  if (o.embd % o.heads !== 0 || o.heads % o.headsKv !== 0) throw new Error('embd must be a multiple of heads, and heads of headsKv');
  if (o.type !== 'f32' && o.type !== 'f16') throw new Error('type must be f32 or f16');
  const headDim = o.embd / o.heads;
  const embdKv = headDim * o.headsKv;
  const vocab = vocabulary();
  const nVocab = vocab.tokens.length;

  // Tensors in ggml order (ne[0] is the contiguous dimension); 1-D norms are always F32.
  const tensors = [
    { name: 'token_embd.weight', ne: [o.embd, nVocab], init: 'embed' },
    { name: 'output_norm.weight', ne: [o.embd], init: 'ones' },
    { name: 'output.weight', ne: [o.embd, nVocab], init: 'linear' },
  ];
  for (let l = 0; l < o.layers; l++) {
    tensors.push(
      { name: `blk.${l}.attn_norm.weight`, ne: [o.embd], init: 'ones' },
      { name: `blk.${l}.attn_q.weight`, ne: [o.embd, o.embd], init: 'linear' },
      { name: `blk.${l}.attn_k.weight`, ne: [o.embd, embdKv], init: 'linear' },
      { name: `blk.${l}.attn_v.weight`, ne: [o.embd, embdKv], init: 'linear' },
      { name: `blk.${l}.attn_output.weight`, ne: [o.embd, o.embd], init: 'linear' },
      { name: `blk.${l}.ffn_norm.weight`, ne: [o.embd], init: 'ones' },
      { name: `blk.${l}.ffn_gate.weight`, ne: [o.embd, o.ff], init: 'linear' },
      { name: `blk.${l}.ffn_up.weight`, ne: [o.embd, o.ff], init: 'linear' },
      { name: `blk.${l}.ffn_down.weight`, ne: [o.ff, o.embd], init: 'linear' },
    );
  }

  const rand = prng(o.seed);
  let offset = 0;
  const data = [];
  for (const t of tensors) {
    const n = t.ne.reduce((a, b) => a * b, 1);
    const type = t.ne.length === 1 || o.type === 'f32' ? GGML_F32 : GGML_F16;
    const scale = t.init === 'embed' ? 1 : Math.sqrt(3 / t.ne[0]); // uniform with variance 1/fan_in
    const bytes = Buffer.alloc(n * (type === GGML_F32 ? 4 : 2));
    for (let i = 0; i < n; i++) {
      const v = t.init === 'ones' ? 1 : (rand() * 2 - 1) * scale;
      if (type === GGML_F32) bytes.writeFloatLE(v, i * 4);
      else bytes.writeUInt16LE(float16Bits(v), i * 2);
    }
    t.type = type;
    t.offset = offset;
    data.push(bytes);
    const padded = Math.ceil(bytes.length / ALIGNMENT) * ALIGNMENT;
    if (padded > bytes.length) data.push(Buffer.alloc(padded - bytes.length));
    offset += padded;
  }

  const kvs = [
    ['general.architecture', 'string', 'llama'],
    ['general.name', 'string', `obscura-tiny-llama-s${o.seed}`],
    ['general.file_type', 'u32', o.type === 'f32' ? 0 : 1],
    ['general.alignment', 'u32', ALIGNMENT],
    ['llama.vocab_size', 'u32', nVocab],
    ['llama.context_length', 'u32', o.contextLength],
    ['llama.embedding_length', 'u32', o.embd],
    ['llama.block_count', 'u32', o.layers],
    ['llama.feed_forward_length', 'u32', o.ff],
    ['llama.rope.dimension_count', 'u32', headDim],
    ['llama.rope.freq_base', 'f32', 10000],
    ['llama.attention.head_count', 'u32', o.heads],
    ['llama.attention.head_count_kv', 'u32', o.headsKv],
    ['llama.attention.layer_norm_rms_epsilon', 'f32', 1e-5],
    ['tokenizer.ggml.model', 'string', 'llama'],
    ['tokenizer.ggml.tokens', 'string[]', vocab.tokens],
    ['tokenizer.ggml.scores', 'f32[]', vocab.scores],
    ['tokenizer.ggml.token_type', 'i32[]', vocab.types],
    ['tokenizer.ggml.unknown_token_id', 'u32', 0],
    ['tokenizer.ggml.bos_token_id', 'u32', 1],
    ['tokenizer.ggml.eos_token_id', 'u32', 2],
    ['tokenizer.ggml.add_bos_token', 'bool', true],
    ['tokenizer.ggml.add_eos_token', 'bool', false],
  ];

  const w = new Writer();
  w.u32(GGUF_MAGIC);
  w.u32(GGUF_VERSION);
  w.u64(tensors.length);
  w.u64(kvs.length);
  for (const [k, type, v] of kvs) w.kv(k, type, v);
  for (const t of tensors) {
    w.str(t.name);
    w.u32(t.ne.length);
    for (const d of t.ne) w.u64(d);
    w.u32(t.type);
    w.u64(t.offset);
  }
  w.pad(ALIGNMENT);
  for (const d of data) w.push(d);
  return Buffer.concat(w.chunks);
}

/** Write the model to `path` (atomically: a partial file never has the final name). */
export function writeGguf(path, options = {}) {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, makeGguf(options), { mode: 0o644 });
  renameSync(tmp, path);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [out, ...rest] = process.argv.slice(2);
  if (!out || out.startsWith('--')) {
    console.error('usage: make-gguf.mjs OUT.gguf [--seed N] [--layers N] [--embd N] [--heads N] [--heads-kv N] [--ff N] [--type f32|f16]');
    process.exit(1);
  }
  const names = { '--seed': 'seed', '--layers': 'layers', '--embd': 'embd', '--heads': 'heads', '--heads-kv': 'headsKv', '--ff': 'ff', '--type': 'type' };
  const options = {};
  for (let i = 0; i < rest.length; i += 2) {
    const key = names[rest[i]];
    if (!key || rest[i + 1] === undefined) {
      console.error(`unknown or incomplete option ${rest[i]}`);
      process.exit(1);
    }
    options[key] = key === 'type' ? rest[i + 1] : Number(rest[i + 1]);
  }
  writeGguf(out, options);
}
