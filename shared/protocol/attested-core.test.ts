/**
 * Golden test: the attested core's deterministic CBOR encoding and its report_data binding
 * (SHA-512 of those exact bytes). If either value changes, every deployed client breaks: change the
 * protocol version, never these bytes.
 */
import { describe, expect, it } from 'vitest';
import { fromHex, toHex } from '../bytes.ts';
import { ObscuraError } from '../errors.ts';
import { coreDigest, coreReportData, encodeAttestedCore, parseAttestedCore, type AttestedCore } from './attested-core.ts';

const core: AttestedCore = {
  v: 1,
  tlsKeySha256: new Uint8Array(32).fill(0x11),
  hpke: [{ suite: 'DHKEM(X25519,HKDF-SHA256)/HKDF-SHA256/AES-256-GCM', publicKey: new Uint8Array(32).fill(0x22) }],
  meshCaSha256: new Uint8Array(32).fill(0x33),
  manifestHead: new Uint8Array(32).fill(0x44),
  checkpointKey: new Uint8Array([0x04, ...new Uint8Array(64).fill(0x55)]),
  issuedAt: 1_800_000_000_000,
  expiresAt: 1_800_000_600_000,
};

// Keys in length-first order: v, hpke, issuedAt, expiresAt, manifestHead, meshCaSha256, tlsKeySha256, checkpointKey.
// Changed deliberately (pre-release, protocol version still 1) when the checkpoint key joined the core.
const GOLDEN_CORE_CBOR =
  'a86176016468706b6581a2657375697465783144484b454d285832353531392c484b44462d534841323536292f484b44462d5348413235362f4145532d3235362d47434d697075626c69634b6579582022222222222222222222222222222222222222222222222222222222222222226869737375656441741b000001a3185c5000696578706972657341741b000001a3186577c06c6d616e696665737448656164582044444444444444444444444444444444444444444444444444444444444444446c6d6573684361536861323536582033333333333333333333333333333333333333333333333333333333333333336c746c734b6579536861323536582011111111111111111111111111111111111111111111111111111111111111116d636865636b706f696e744b657958410455555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555';
const GOLDEN_REPORT_DATA =
  'a6dcb89d7e657a7a82548445b14347543b7ac46e08b2ecd7ae2df0eba647fefc2678514c906c275197f1dad9cd1a127d66edf4f4d961c5d0a82f746da9f69b36';
const GOLDEN_CORE_DIGEST = '913046ff71a2f0eb6821ff3744b41656940eadfa36b0b0b39cd29ce99ca50db6';

describe('attested core binding (golden)', () => {
  it('encodes deterministically (RFC 8949 §4.2.1: keys sorted by encoded length, then bytes)', () => {
    const bytes = encodeAttestedCore(core);
    expect(toHex(bytes)).toBe(GOLDEN_CORE_CBOR);
    // Field order in the object does not matter.
    const shuffled = { expiresAt: core.expiresAt, checkpointKey: core.checkpointKey, issuedAt: core.issuedAt, manifestHead: core.manifestHead, meshCaSha256: core.meshCaSha256, hpke: core.hpke, tlsKeySha256: core.tlsKeySha256, v: 1 };
    expect(toHex(encodeAttestedCore(shuffled))).toBe(toHex(bytes));
  });

  it('binds report_data = SHA-512(core) and the HPKE info digest = SHA-256(core)', async () => {
    const bytes = encodeAttestedCore(core);
    expect(toHex(await coreReportData(bytes))).toBe(GOLDEN_REPORT_DATA);
    expect(toHex(await coreDigest(bytes))).toBe(GOLDEN_CORE_DIGEST);
    expect((await coreReportData(bytes)).length).toBe(64);
  });

  it('a nonce changes the binding', async () => {
    const a = await coreReportData(encodeAttestedCore(core));
    const b = await coreReportData(encodeAttestedCore({ ...core, nonce: fromHex('00'.repeat(16)) }));
    expect(toHex(a)).not.toBe(toHex(b));
  });

  it('round-trips and refuses a non-deterministic encoding', () => {
    const bytes = encodeAttestedCore(core);
    expect(parseAttestedCore(bytes)).toEqual(core);
    // Same map, keys in a non-canonical order: `v` moved to the end.
    const reordered = new Uint8Array([...bytes.subarray(0, 1), ...bytes.subarray(4), ...bytes.subarray(1, 4)]);
    expect(() => parseAttestedCore(reordered)).toThrow(ObscuraError);
  });
});
