/**
 * The registration bindings, pinned: the GPU nonce formula is part of the wire protocol (the worker and
 * the service derive it apart), so a change to it must show here. The expected bytes were computed
 * independently of this code (CBOR written by hand per RFC 8949 §4.2.1, SHA-256 by Python's hashlib).
 */
import { describe, expect, it } from 'vitest';
import { fromHex, sha256, toHex } from '../bytes.ts';
import { HPKE_SUITE_X25519 } from './hpke-suites.ts';
import { WORKER_REGISTRATION_GPU_NONCE_BYTES, workerRegistrationGpuNonce, workerRegistrationReportData } from './worker-registration.ts';

const INPUT = {
  nonce: new Uint8Array(32).fill(0x11),
  hpkePublicKey: new Uint8Array(32).fill(0x22),
  hpkeSuite: HPKE_SUITE_X25519,
  certKeySha256: new Uint8Array(32).fill(0x33),
};

// {"nonce": h'11'*32, "purpose": "obscura/v1 worker registration gpu nonce", "hpkeSuite": ..., "certKeySha256": h'33'*32, "hpkePublicKey": h'22'*32}
const PREIMAGE_HEX =
  'a5656e6f6e6365582011111111111111111111111111111111111111111111111111111111111111116770757270' +
  '6f736578286f6273637572612f763120776f726b657220726567697374726174696f6e20677075206e6f6e6365' +
  '6968706b655375697465783144484b454d285832353531392c484b44462d534841323536292f484b44462d53484132' +
  '35362f4145532d3235362d47434d6d636572744b65795368613235365820333333333333333333333333333333333333' +
  '33333333333333333333333333336d68706b655075626c69634b6579582022222222222222222222222222222222222222' +
  '22222222222222222222222222';
const GPU_NONCE_HEX = 'bf2483aa4e9d95d2857837216db35d7a98b562d0e13d13b6c41bc3b41c6c943b';

describe('workerRegistrationGpuNonce', () => {
  it('is SHA-256 over the deterministic CBOR of its purpose, the service nonce and the key binding', async () => {
    expect(toHex(await sha256(fromHex(PREIMAGE_HEX)))).toBe(GPU_NONCE_HEX);
    const nonce = await workerRegistrationGpuNonce(INPUT);
    expect(nonce).toHaveLength(WORKER_REGISTRATION_GPU_NONCE_BYTES);
    expect(toHex(nonce)).toBe(GPU_NONCE_HEX);
  });

  it('changes with each input, and differs from the CPU report_data', async () => {
    const base = toHex(await workerRegistrationGpuNonce(INPUT));
    const variants = [
      { ...INPUT, nonce: new Uint8Array(32).fill(0x12) },
      { ...INPUT, hpkePublicKey: new Uint8Array(32).fill(0x23) },
      { ...INPUT, hpkeSuite: 'another suite' },
      { ...INPUT, certKeySha256: new Uint8Array(32).fill(0x34) },
    ];
    for (const v of variants) expect(toHex(await workerRegistrationGpuNonce(v))).not.toBe(base);
    const reportData = await workerRegistrationReportData(INPUT);
    expect(toHex(reportData).slice(0, 64)).not.toBe(base);
  });
});
