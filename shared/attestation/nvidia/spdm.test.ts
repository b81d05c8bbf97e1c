import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ObscuraError, type ErrorCode } from '../../errors.ts';
import { fromHex, toHex } from '../../bytes.ts';
import { parseNvidiaSpdmEvidence, SPDM_GET_MEASUREMENTS_REQUEST_BYTES } from './spdm.ts';
import { nvidiaGpuFacts } from './facts.ts';

const vector = (name: string) => readFileSync(new URL(`../../../test/vectors/nvidia/${name}/report.hex`, import.meta.url), 'utf8');
const A_HEX = vector('h100-a');
const B_HEX = vector('h100-b');
const A = fromHex(A_HEX);

// Offsets in the h100-a evidence (the same layout holds for h100-b up to the opaque data).
const RESP = SPDM_GET_MEASUREMENTS_REQUEST_BYTES; // 37
const RECORD = RESP + 8; // 45
const BLOCK_BYTES = 4 + 3 + 48; // 55
const RESP_NONCE = RECORD + 64 * BLOCK_BYTES; // 3565
const OPAQUE_LEN = RESP_NONCE + 32; // 3597

function codeOf(fn: () => unknown): ErrorCode | 'none' {
  try {
    fn();
    return 'none';
  } catch (e) {
    if (e instanceof ObscuraError) return e.code;
    throw e;
  }
}

function patched(edit: (b: Uint8Array) => void, base = A): Uint8Array {
  const b = base.slice();
  edit(b);
  return b;
}

describe('parseNvidiaSpdmEvidence on the real H100 vectors', () => {
  it('h100-a: request, 64 blocks, nonces, opaque fields', () => {
    const e = parseNvidiaSpdmEvidence(A_HEX);
    expect(e.request).toMatchObject({ version: 0x11, measurementOperation: 0xff, slotId: 0 });
    expect(toHex(e.request.nonce)).toBe('931d8dd0add203ac3d8b4fbde75e115278eefcdceac5b87671a748f32364dfcb');
    expect(toHex(e.response.nonce)).toBe('b4b8a06aaaa35542839388e159d447a5d6f6194998fd86513e2d591ccf640985');
    expect(e.response.blocks).toHaveLength(64);
    expect(e.response.blocks.map((b) => b.index)).toEqual(Array.from({ length: 64 }, (_, i) => i + 1));
    for (const b of e.response.blocks) {
      expect(b).toMatchObject({ measurementSpecification: 1, valueType: 1, rawBitstream: false });
      expect(b.value).toHaveLength(48);
    }
    expect(e.response.opaqueData).toHaveLength(422);
    expect(e.response.signature).toHaveLength(96);
    expect(e.signedBytes).toHaveLength(A.length - 96);

    const f = nvidiaGpuFacts(e);
    expect(f.measurements[1]).toBe('00'.repeat(48));
    expect(f.measurements[2]).toBe('8048dfd18fe229bf16eb9d30cca0f11a24dafe6eb731de1462984645a0b189b77c4e4e17de727a5e19e3d07de51da338');
    expect(f.measurements[12]).toBe('413d008cedd5526a79455a178154328ce960af252bdb06e7fe4080049add412488cac39ecf3d80efbdc6bdd363861773');
    expect(f.measurements[41]).toBe('9d2c6389c070dde430ffd510cad0c546fb9a73b9ee7a478fa804d2ab14c674487abdc7aa12d90215ced4f3678f2765fa');
    expect(f.measurements[64]).toBe('00'.repeat(48));

    expect(e.opaque).toMatchObject({
      driverVersion: '550.90.07',
      vbiosVersion: '96.00.9F.00.01',
      boardId: 0x3b1,
      chipSku: '882',
      chipSkuMod: '0',
      project: '1010',
      projectSku: '0200',
      projectSkuMod: '',
    });
    expect(toHex(e.opaque.fwid!)).toBe('f5c384aebb579217a2c66b17ed0f28e6a9b8d639041acd7b4721cec004f7275494ba94bb5cdfdb3055ee051762b1f75d');
    expect(e.opaque.fields.map((x) => x.type)).toEqual([6, 14, 15, 16, 17, 18, 19, 3, 4, 12, 13, 11, 20, 21]);
    expect(e.opaque.fields.find((x) => x.name === 'NVDEC0_STATUS')?.value).toEqual(Uint8Array.of(0x55));
    // MSRSCNT: how often each index was extended; an index never extended reads all zeros.
    const counts = e.opaque.measurementCounts!;
    expect(counts).toHaveLength(64);
    expect(counts[11]).toBe(130); // index 12
    for (const b of e.response.blocks) expect(counts[b.index - 1] === 0).toBe(b.value.every((x) => x === 0));
  });

  it('h100-b: another capture, older driver without FWID', () => {
    const e = parseNvidiaSpdmEvidence(B_HEX);
    const f = nvidiaGpuFacts(e);
    expect(f.nonce).toBe('4cff7f5380ead8fad8ec2c531c110aca4302a88f603792801a8ca29ee151af2e');
    expect(f.responderNonce.startsWith('1020ecb8')).toBe(true);
    expect(Object.keys(f.measurements)).toHaveLength(64);
    expect(e.opaque).toMatchObject({ driverVersion: '545.00', vbiosVersion: '96.00.5E.00.01', boardId: 945, chipSku: '882' });
    expect(e.opaque.fwid).toBeUndefined();
    expect(e.response.opaqueData).toHaveLength(354);
    // Same GPU model: some firmware measurements agree with h100-a, VBIOS-dependent ones differ.
    const a = nvidiaGpuFacts(parseNvidiaSpdmEvidence(A_HEX));
    for (const i of [5, 6, 7, 34, 36, 39]) expect(f.measurements[i]).toBe(a.measurements[i]);
    for (const i of [2, 3, 4, 8]) expect(f.measurements[i]).not.toBe(a.measurements[i]);
  });

  it('takes bytes or hex (either case) alike', () => {
    const fromBytes = nvidiaGpuFacts(parseNvidiaSpdmEvidence(A));
    expect(nvidiaGpuFacts(parseNvidiaSpdmEvidence(A_HEX.toUpperCase()))).toEqual(fromBytes);
    expect(codeOf(() => parseNvidiaSpdmEvidence(A_HEX + '0'))).toBe('ERR_MALFORMED');
    expect(codeOf(() => parseNvidiaSpdmEvidence('zz'))).toBe('ERR_MALFORMED');
  });
});

describe('parseNvidiaSpdmEvidence refuses', () => {
  const cases: [string, Uint8Array, ErrorCode][] = [
    ['empty input', new Uint8Array(), 'ERR_MALFORMED'],
    ['a truncated request', A.subarray(0, 20), 'ERR_MALFORMED'],
    ['one byte short', A.subarray(0, A.length - 1), 'ERR_MALFORMED'],
    ['one trailing byte', patched(() => {}, Uint8Array.from([...A, 0])), 'ERR_MALFORMED'],
    ['request version 1.0', patched((b) => (b[0] = 0x10)), 'ERR_UNSUPPORTED_VERSION'],
    ['request version 1.2', patched((b) => (b[0] = 0x12)), 'ERR_UNSUPPORTED_VERSION'],
    ['a request code other than GET_MEASUREMENTS', patched((b) => (b[1] = 0xe1)), 'ERR_MALFORMED'],
    ['request param1 reserved bit', patched((b) => (b[2] = 0x03)), 'ERR_RESERVED_NONZERO'],
    ['an unsigned request', patched((b) => (b[2] = 0x00)), 'ERR_MALFORMED'],
    ['a count-only request', patched((b) => (b[3] = 0x00)), 'ERR_MALFORMED'],
    ['a one-index request answered with 64 blocks', patched((b) => (b[3] = 0x02)), 'ERR_MALFORMED'],
    ['slot id reserved bits', patched((b) => (b[36] = 0x10)), 'ERR_RESERVED_NONZERO'],
    ['slot id 8', patched((b) => (b[36] = 0x08)), 'ERR_MALFORMED'],
    ['request slot differing from the response slot', patched((b) => (b[36] = 0x01)), 'ERR_MALFORMED'],
    ['response version differing from the request', patched((b) => (b[RESP] = 0x12)), 'ERR_UNSUPPORTED_VERSION'],
    ['a response code other than MEASUREMENTS', patched((b) => (b[RESP + 1] = 0x61)), 'ERR_MALFORMED'],
    ['response param1 non-zero', patched((b) => (b[RESP + 2] = 0x01)), 'ERR_RESERVED_NONZERO'],
    ['response param2 reserved bits', patched((b) => (b[RESP + 3] = 0x20)), 'ERR_RESERVED_NONZERO'],
    ['a block count off by one', patched((b) => (b[RESP + 4] = 63)), 'ERR_MALFORMED'],
    ['a record length off by one', patched((b) => (b[RESP + 5] -= 1)), 'ERR_MALFORMED'],
    ['a record length past the end', patched((b) => (b[RESP + 7] = 0xff)), 'ERR_MALFORMED'],
    ['block index 0', patched((b) => (b[RECORD] = 0)), 'ERR_MALFORMED'],
    ['block index 0xFF', patched((b) => (b[RECORD] = 0xff)), 'ERR_MALFORMED'],
    ['a duplicate block index', patched((b) => (b[RECORD + BLOCK_BYTES] = 1)), 'ERR_MALFORMED'],
    ['a non-DMTF measurement specification', patched((b) => (b[RECORD + 1] = 0x02)), 'ERR_MALFORMED'],
    ['a block size off by one', patched((b) => (b[RECORD + 2] = 50)), 'ERR_MALFORMED'],
    ['a reserved DMTF value type', patched((b) => (b[RECORD + 4] = 0x05)), 'ERR_MALFORMED'],
    ['a DMTF value size off by one', patched((b) => (b[RECORD + 5] = 47)), 'ERR_MALFORMED'],
    ['an opaque length past the signature', patched((b) => (b[OPAQUE_LEN] += 1)), 'ERR_MALFORMED'],
    ['an opaque length over 1024', patched((b) => (b[OPAQUE_LEN + 1] = 0x04)), 'ERR_MALFORMED'],
    ['an opaque TLV length past its end', patched((b) => (b[OPAQUE_LEN + 2 + 2] = 0xff)), 'ERR_MALFORMED'],
    ['a duplicate opaque type', patched((b) => (b[OPAQUE_LEN + 2 + 12] = 6)), 'ERR_MALFORMED'],
  ];
  it.each(cases)('%s', (_, bytes, code) => {
    expect(codeOf(() => parseNvidiaSpdmEvidence(bytes))).toBe(code);
  });

  it('a digest of the wrong length even when the sizes agree', () => {
    // Shrink block 64 to a 47-byte digest, keeping every length field consistent.
    const last = RECORD + 63 * BLOCK_BYTES;
    const b = Uint8Array.from([...A.subarray(0, last + BLOCK_BYTES - 1), ...A.subarray(last + BLOCK_BYTES)]);
    b[last + 2] = 50;
    b[last + 5] = 47;
    const len = 3520 - 1;
    b[RESP + 5] = len & 0xff;
    b[RESP + 6] = len >> 8;
    expect(codeOf(() => parseNvidiaSpdmEvidence(b))).toBe('ERR_MALFORMED');
    b[last + 4] = 0x81; // the same value as a raw bitstream has no fixed length
    expect(codeOf(() => parseNvidiaSpdmEvidence(b))).toBe('none');
  });
});
