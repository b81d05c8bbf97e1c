/**
 * What a worker's evidence binds at registration: the service's one-time nonce and the worker's fresh
 * keys, so evidence cannot be replayed and secrets reach only the key the hardware vouched for.
 */
import { sha256, sha512 } from '../bytes.ts';
import { encodeDeterministic } from '../cbor.ts';

export const WORKER_REGISTRATION_NONCE_BYTES = 32;

export function workerRegistrationReportData(input: {
  nonce: Uint8Array;
  hpkePublicKey: Uint8Array;
  hpkeSuite: string;
  certKeySha256: Uint8Array;
}): Promise<Uint8Array> {
  return sha512(
    encodeDeterministic({
      purpose: 'obscura/v1 worker registration',
      nonce: input.nonce,
      hpkePublicKey: input.hpkePublicKey,
      hpkeSuite: input.hpkeSuite,
      certKeySha256: input.certKeySha256,
    }),
  );
}

/** The GPU's SPDM requester nonce is 32 bytes (SPDM 1.1 GET_MEASUREMENTS). */
export const WORKER_REGISTRATION_GPU_NONCE_BYTES = 32;

/**
 * The nonce a worker puts in its GPUs' GET_MEASUREMENTS at registration: SHA-256 over the same
 * service nonce and key binding as the CPU evidence's report_data, under its own purpose. The service
 * derives it again and requires it in the GPU evidence, so GPU evidence made for one registration
 * (another nonce, or other keys) cannot be combined with the CPU evidence of another.
 */
export function workerRegistrationGpuNonce(input: {
  nonce: Uint8Array;
  hpkePublicKey: Uint8Array;
  hpkeSuite: string;
  certKeySha256: Uint8Array;
}): Promise<Uint8Array> {
  return sha256(
    encodeDeterministic({
      purpose: 'obscura/v1 worker registration gpu nonce',
      nonce: input.nonce,
      hpkePublicKey: input.hpkePublicKey,
      hpkeSuite: input.hpkeSuite,
      certKeySha256: input.certKeySha256,
    }),
  );
}
