import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ObscuraError } from '../../errors.ts';
import { concatBytes, toHex } from '../../bytes.ts';
import { parseQuote, QUOTE_HEADER_BYTES, TD_QUOTE_BODY_V4_BYTES } from './quote.ts';
import { parsePckExtensions } from './pck-extensions.ts';
import { sliceSignedMember } from './signed-json.ts';
import { findExtension, parseCertificate } from '../x509/index.ts';

const VECTOR = new URL('../../../test/vectors/tdx/spr-e4/', import.meta.url);
const quoteBytes = new Uint8Array(readFileSync(new URL('quote.dat', VECTOR)));

/** Offsets in the real v4 quote (header 48 + body 584 = 632). */
const SIG_DATA_LEN_AT = 632;
const SIG_DATA_AT = 636;
const CERT_DATA_TYPE_AT = SIG_DATA_AT + 128;
const QE_REPORT_AT = CERT_DATA_TYPE_AT + 6;
const QE_AUTH_SIZE_AT = QE_REPORT_AT + 384 + 64;
const PCK_TYPE_AT = QE_AUTH_SIZE_AT + 2 + 32;

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    if (e instanceof ObscuraError) return e.code;
    throw e;
  }
  return 'ok';
}

function u16(n: number): Uint8Array {
  return Uint8Array.of(n & 0xff, n >> 8);
}
function u32(n: number): Uint8Array {
  return Uint8Array.of(n & 0xff, (n >> 8) & 0xff, (n >> 16) & 0xff, n >>> 24);
}

/** The same quote re-framed as v5 (signature no longer valid: parsing does not care). */
function asV5(bodyType: 2 | 3): Uint8Array {
  const header = quoteBytes.slice(0, QUOTE_HEADER_BYTES);
  header[0] = 5;
  let body: Uint8Array = quoteBytes.slice(QUOTE_HEADER_BYTES, QUOTE_HEADER_BYTES + TD_QUOTE_BODY_V4_BYTES);
  if (bodyType === 3) body = concatBytes(body, new Uint8Array(16).fill(1), new Uint8Array(48).fill(2));
  return concatBytes(header, u16(bodyType), u32(body.length), body, quoteBytes.slice(SIG_DATA_LEN_AT));
}

describe('parseQuote on the real SPR E4 quote (v4)', () => {
  const q = parseQuote(quoteBytes);

  it('reads the header', () => {
    expect(q.header.version).toBe(4);
    expect(q.header.attestationKeyType).toBe(2);
    expect(q.header.teeType).toBe(0x81);
    expect(toHex(q.header.qeVendorId)).toBe('939a7233f79c4ca9940a0db3957f0607');
    expect(toHex(q.header.userData)).toBe('739c3f292a15bace1f726351a70d4b7900000000');
  });

  it('reads the TD quote body at the spec offsets', () => {
    const b = q.body;
    expect(b.bodyType).toBe(2);
    expect(toHex(b.teeTcbSvn)).toBe('03000400000000000000000000000000');
    expect(toHex(b.mrSeam)).toBe(
      '2fd279c16164a93dd5bf373d834328d46008c2b693af9ebb865b08b2ced320c9a89b4869a9fab60fbe9d0c5a5363c656',
    );
    expect(toHex(b.mrSignerSeam)).toBe('00'.repeat(48));
    expect(toHex(b.seamAttributes)).toBe('0000000000000000');
    expect(toHex(b.tdAttributes)).toBe('0000004000000000');
    expect(toHex(b.xfam)).toBe('e71a060000000000');
    expect(toHex(b.mrTd)).toBe('6363b8043668a3ad953278e10389574d326c6749fb78aa810ecd9336923db86f22fc00b8dcd404bc10d5e119d7215cbb');
    expect(toHex(b.mrConfigId)).toBe('00'.repeat(48));
    expect(toHex(b.mrOwner)).toBe('00'.repeat(48));
    expect(toHex(b.mrOwnerConfig)).toBe('00'.repeat(48));
    expect(b.rtmrs.map(toHex)).toEqual([
      '2927da70461cd63266f43230cc1849c03ef25ebe490062a801d8fcc80af42976823adf08f833c1e50b51779c6593f32a',
      '2c700b8ba9b85783f8be9fb9443647bdc0bb3c50747f06297cc6538c25a5f589c4b56d035c59107c6bc5800db2cacb61',
      '8652f0caaba7e215ea442dc36a4499d8fec3362f3a0b2ca151cbe4b3e6466fe59c7368b3c2287fc7c3bf5c924eb4424e',
      '00'.repeat(48),
    ]);
    expect(toHex(b.reportData)).toBe(
      '6c62dec1b8191749a31dab490be532a35944dea47caef1f980863993d9899545eb7406a38d1eed313b987a467dacead6f0c87a6d766c66f6f29f8acb281f1113',
    );
    expect(b.teeTcbSvn2).toBeUndefined();
    expect(q.signedBytes.length).toBe(632);
  });

  it('reads the signature data, QE report and PCK chain', () => {
    expect(q.signature.length).toBe(64);
    expect(q.attestationKey.length).toBe(64);
    expect(q.qeReport.isvProdId).toBe(2);
    expect(q.qeReport.isvSvn).toBe(4);
    expect(toHex(q.qeReport.mrSigner)).toBe('dc9e2a7c6f948f17474e34a7fc43ed030f7c1563f1babddf6340c82e0e54a8c5');
    expect(toHex(q.qeReport.attributes)).toBe('1500000000000000e700000000000000');
    expect(toHex(q.qeReport.miscSelect)).toBe('00000000');
    expect(toHex(q.qeAuthData)).toBe('000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f');
    expect(q.pckCertChainDer.length).toBe(3);
    expect(q.pckCertChainPem.startsWith('-----BEGIN CERTIFICATE-----')).toBe(true);
    // The vector ends with "\nextra bytes(only for testing purpose)\n" after the signature data.
    expect(q.trailingBytes).toBe(39);
  });

  it('does not alias the input buffer', () => {
    const copy = quoteBytes.slice();
    const parsed = parseQuote(copy);
    copy.fill(0);
    expect(toHex(parsed.body.mrTd).startsWith('6363b804')).toBe(true);
  });

  it('decodes the PCK leaf\'s Intel SGX extensions', () => {
    const leaf = parseCertificate(q.pckCertChainDer[0]);
    const ext = parsePckExtensions(findExtension(leaf, '1.2.840.113741.1.13.1')!.value);
    expect(toHex(ext.fmspc)).toBe('50806f000000');
    expect(toHex(ext.pceId)).toBe('0000');
    expect(ext.tcbComponents).toEqual([3, 3, 2, 2, 2, 1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0]);
    expect(ext.pceSvn).toBe(11);
    expect(toHex(ext.cpuSvn)).toBe('03030202020100020000000000000000');
    expect(ext.sgxType).toBe(1); // Scalable
    expect(ext.platformInstanceId?.length).toBe(16);
    expect(ext.configuration).toEqual({ dynamicPlatform: true, cachedKeys: false, smtEnabled: true });
  });
});

describe('parseQuote v5', () => {
  it('parses body type 2 (TDX 1.0) and signs header || descriptor || body', () => {
    const q = parseQuote(asV5(2));
    expect(q.header.version).toBe(5);
    expect(q.body.bodyType).toBe(2);
    expect(q.signedBytes.length).toBe(48 + 6 + 584);
    expect(toHex(q.body.mrTd).startsWith('6363b804')).toBe(true);
  });

  it('parses body type 3 (TDX 1.5) with TEE_TCB_SVN_2 and MRSERVICETD', () => {
    const q = parseQuote(asV5(3));
    expect(q.body.bodyType).toBe(3);
    expect(toHex(q.body.teeTcbSvn2!)).toBe('01'.repeat(16));
    expect(toHex(q.body.mrServiceTd!)).toBe('02'.repeat(48));
    expect(q.signedBytes.length).toBe(48 + 6 + 648);
  });

  it('refuses an SGX body, an unknown body type, and a size that does not fit the type', () => {
    const bad = (type: number, size: number) => {
      const v = asV5(2);
      v.set(u16(type), 48);
      v.set(u32(size), 50);
      return v;
    };
    expect(codeOf(() => parseQuote(bad(1, 384)))).toBe('ERR_UNSUPPORTED_VERSION');
    expect(codeOf(() => parseQuote(bad(4, 584)))).toBe('ERR_UNSUPPORTED_VERSION');
    expect(codeOf(() => parseQuote(bad(2, 648)))).toBe('ERR_MALFORMED');
    expect(codeOf(() => parseQuote(bad(3, 584)))).toBe('ERR_MALFORMED');
  });
});

describe('parseQuote refuses', () => {
  const edit = (at: number, bytes: Uint8Array): Uint8Array => {
    const q = quoteBytes.slice();
    q.set(bytes, at);
    return q;
  };

  it('other versions, key types, TEE types and QE vendors', () => {
    expect(codeOf(() => parseQuote(edit(0, u16(3))))).toBe('ERR_UNSUPPORTED_VERSION');
    expect(codeOf(() => parseQuote(edit(0, u16(6))))).toBe('ERR_UNSUPPORTED_VERSION');
    expect(codeOf(() => parseQuote(edit(2, u16(3))))).toBe('ERR_UNSUPPORTED_VERSION'); // ECDSA-384
    expect(codeOf(() => parseQuote(edit(4, u32(0))))).toBe('ERR_UNSUPPORTED_VERSION'); // SGX
    expect(codeOf(() => parseQuote(edit(12, Uint8Array.of(0x93 ^ 1))))).toBe('ERR_UNSUPPORTED_VERSION');
  });

  it('non-zero reserved bytes in the header and the QE report', () => {
    expect(codeOf(() => parseQuote(edit(8, Uint8Array.of(1))))).toBe('ERR_RESERVED_NONZERO');
    expect(codeOf(() => parseQuote(edit(11, Uint8Array.of(0x80))))).toBe('ERR_RESERVED_NONZERO');
    for (const offset of [20, 96, 160, 262, 303]) {
      expect(codeOf(() => parseQuote(edit(QE_REPORT_AT + offset, Uint8Array.of(1))))).toBe('ERR_RESERVED_NONZERO');
    }
  });

  it('other certification data types', () => {
    expect(codeOf(() => parseQuote(edit(CERT_DATA_TYPE_AT, u16(5))))).toBe('ERR_UNSUPPORTED_VERSION');
    for (const t of [1, 2, 3, 4, 6, 7]) {
      expect(codeOf(() => parseQuote(edit(PCK_TYPE_AT, u16(t))))).toBe('ERR_UNSUPPORTED_VERSION');
    }
  });

  it('lengths that disagree', () => {
    expect(codeOf(() => parseQuote(edit(SIG_DATA_LEN_AT, u32(0xffffffff))))).toBe('ERR_MALFORMED');
    expect(codeOf(() => parseQuote(edit(SIG_DATA_LEN_AT, u32(4299 - 1))))).toBe('ERR_MALFORMED');
    expect(codeOf(() => parseQuote(edit(SIG_DATA_LEN_AT, u32(4299 + 1))))).toBe('ERR_MALFORMED'); // cert data no longer fills it
    expect(codeOf(() => parseQuote(edit(CERT_DATA_TYPE_AT + 2, u32(4165 + 1))))).toBe('ERR_MALFORMED');
    expect(codeOf(() => parseQuote(edit(QE_AUTH_SIZE_AT, u16(0xffff))))).toBe('ERR_MALFORMED');
    expect(codeOf(() => parseQuote(edit(QE_AUTH_SIZE_AT, u16(31))))).not.toBe('ok');
    expect(codeOf(() => parseQuote(edit(PCK_TYPE_AT + 2, u32(3677 - 1))))).toBe('ERR_MALFORMED');
  });

  it('every truncation', () => {
    for (let n = 0; n < 4935; n += n < 700 ? 1 : 37) {
      expect(codeOf(() => parseQuote(quoteBytes.subarray(0, n)))).not.toBe('ok');
    }
    expect(codeOf(() => parseQuote(quoteBytes.subarray(0, 4935)))).toBe('ok');
  });

  it('a PCK chain that is not PEM certificates', () => {
    const q = quoteBytes.slice();
    const pemAt = PCK_TYPE_AT + 6;
    q.set(new TextEncoder().encode('-----BEGIN PRIVATE KEY-----'), pemAt);
    expect(codeOf(() => parseQuote(q))).toBe('ERR_MALFORMED');
    const r = quoteBytes.slice();
    r[pemAt + 100] = 0xff; // not UTF-8
    expect(codeOf(() => parseQuote(r))).toBe('ERR_MALFORMED');
  });

  it('non-bytes', () => {
    expect(codeOf(() => parseQuote('quote' as unknown as Uint8Array))).toBe('ERR_MALFORMED');
  });
});

/** mulberry32: a small seeded PRNG, so a failing case can be replayed from its index. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('parseQuote fuzz', () => {
  it('throws only ObscuraError on 12,000 seeded random and mutated inputs, quickly', () => {
    const rand = prng(0x7d5);
    const int = (n: number) => Math.floor(rand() * n);
    const seeds = [quoteBytes, asV5(2), asV5(3)];
    const lengthFields = [SIG_DATA_LEN_AT, CERT_DATA_TYPE_AT + 2, QE_AUTH_SIZE_AT, PCK_TYPE_AT + 2];
    const boundary = [0, 1, 2, 0x7f, 0x80, 0xff, 0x100, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xffffffff];
    const counts: Record<string, number> = {};
    const started = Date.now();

    for (let i = 0; i < 12_000; i++) {
      let input: Uint8Array;
      const kind = i % 8;
      const base = seeds[int(seeds.length)];
      if (kind === 0) {
        // Pure noise of any length.
        input = new Uint8Array(int(6000));
        for (let j = 0; j < input.length; j++) input[j] = int(256);
      } else if (kind === 1) {
        // A valid header prefix followed by noise, to get past the first checks.
        input = base.slice(0, 48 + int(base.length));
        for (let j = 48; j < input.length; j++) if (rand() < 0.3) input[j] = int(256);
      } else if (kind === 2) {
        input = base.slice(0, int(base.length + 1));
      } else if (kind === 3) {
        input = base.slice();
        for (let k = 1 + int(8); k > 0; k--) input[int(input.length)] ^= 1 << int(8);
      } else if (kind === 4) {
        input = base.slice();
        const at = lengthFields[int(lengthFields.length)] + (base.length - quoteBytes.length); // v5 shifts them
        const v = rand() < 0.5 ? boundary[int(boundary.length)] : int(0x100000000);
        if (at + 4 <= input.length) input.set(u32(v), at);
      } else if (kind === 5) {
        // Insert or delete a run of bytes somewhere.
        const at = int(base.length);
        const n = 1 + int(64);
        input = rand() < 0.5 ? concatBytes(base.subarray(0, at), new Uint8Array(n).fill(int(256)), base.subarray(at)) : concatBytes(base.subarray(0, at), base.subarray(Math.min(base.length, at + n)));
      } else if (kind === 6) {
        // Scribble inside the PEM text: base64 and line structure.
        input = base.slice();
        const pemStart = base.length - 3677 - 39;
        const chars = '-=+/\nABCxyz09 \0';
        for (let k = 1 + int(4); k > 0; k--) input[pemStart + int(3677)] = chars.charCodeAt(int(chars.length));
      } else {
        // Overwrite a run with one value (zero, 0xff or random).
        input = base.slice();
        const at = int(base.length);
        input.fill([0, 0xff, int(256)][int(3)], at, at + 1 + int(32));
      }
      let outcome: string;
      try {
        parseQuote(input);
        outcome = 'ok';
      } catch (e) {
        if (!(e instanceof ObscuraError)) throw new Error(`fuzz case ${i} threw a non-ObscuraError: ${String(e)}`);
        outcome = e.code;
      }
      counts[outcome] = (counts[outcome] ?? 0) + 1;
    }
    // Each outcome class showed up: the mutations reach every layer of the parser.
    expect(counts.ERR_MALFORMED).toBeGreaterThan(1000);
    expect(counts.ERR_UNSUPPORTED_VERSION).toBeGreaterThan(10);
    expect(counts.ERR_RESERVED_NONZERO).toBeGreaterThan(10);
    expect(counts.ok).toBeGreaterThan(100);
    expect(Date.now() - started).toBeLessThan(30_000);
  });

  it('the PCK extension decoder and the signed-JSON slicer throw only ObscuraError', () => {
    const rand = prng(0x5e1);
    const int = (n: number) => Math.floor(rand() * n);
    const leaf = parseCertificate(parseQuote(quoteBytes).pckCertChainDer[0]);
    const ext = findExtension(leaf, '1.2.840.113741.1.13.1')!.value;
    const json = new Uint8Array(readFileSync(new URL('tcb_info.json', VECTOR)));
    for (let i = 0; i < 3000; i++) {
      const e = ext.slice();
      for (let k = 1 + int(4); k > 0; k--) e[int(e.length)] = int(256);
      const j = json.slice(0, i % 5 === 0 ? int(json.length) : json.length);
      for (let k = int(3); k > 0; k--) j[int(j.length)] = '{}[]",:\\ 0a'.charCodeAt(int(11));
      for (const run of [() => parsePckExtensions(e), () => sliceSignedMember(j, 'tcbInfo', 'TCB info')]) {
        try {
          run();
        } catch (err) {
          if (!(err instanceof ObscuraError)) throw new Error(`case ${i} threw a non-ObscuraError: ${String(err)}`);
        }
      }
    }
  });
});
