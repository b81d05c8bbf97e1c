/**
 * What a worker's evidence binds at registration: the service's one-time nonce and the worker's fresh
 * keys, so evidence cannot be replayed and secrets reach only the key the hardware vouched for.
 */
import { sha512 } from '../bytes.ts';
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
