/**
 * Model weights encrypted at rest, from the owner's side: a fresh model key encrypts the weights, and
 * the key goes to the attested attestation service only, HPKE-sealed to the key its evidence vouches
 * for and signed by an owner of the current manifest. The owner keeps no copy of the key.
 */
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { randomBytes, sha256, toBase64Url, toHex } from '../../../../shared/bytes.ts';
import { ObscuraError } from '../../../../shared/errors.ts';
import { PURPOSE_MODEL_KEY_UPLOAD, signOwnerRequest } from '../../../../shared/manifest/owner-request.ts';
import { LABEL_MODEL_KEY_TO_SERVICE } from '../../../../shared/protocol/constants.ts';
import { encryptWeights } from '../../../../shared/protocol/encrypted-weights.ts';
import { chooseHpkeSuite } from '../../../../shared/protocol/hpke-suites.ts';
import { MODEL_KEY_BYTES, modelKeyUploadFields, sealModelKey } from '../../../../shared/protocol/model-key.ts';
import type { AdminClient, AttestedService } from './admin-client.ts';

export async function uploadModelKey(input: {
  client: AdminClient;
  attested: AttestedService;
  signer: { id: string; privateKey: CryptoKey };
  weightsDigest: string;
  key: Uint8Array;
}): Promise<{ changed: boolean }> {
  const { verified, coreDigest } = input.attested;
  const suite = chooseHpkeSuite(verified.core.hpke.map((h) => h.suite));
  const offer = verified.core.hpke.find((h) => h.suite === suite)!;
  const sealed = await sealModelKey({ suite, recipientPublicKey: offer.publicKey, label: LABEL_MODEL_KEY_TO_SERVICE, context: coreDigest, key: input.key, weightsDigest: input.weightsDigest });
  const fields = modelKeyUploadFields({ sealed, coreDigest, timestamp: Date.now(), manifestHead: verified.manifestHead });
  const signature = await signOwnerRequest(input.signer.privateKey, PURPOSE_MODEL_KEY_UPLOAD, fields);
  return input.client.sendJson<{ changed: boolean }>('POST', '/v1/models/keys', {
    weightsDigest: input.weightsDigest,
    suite,
    enc: toBase64Url(sealed.enc),
    ct: toBase64Url(sealed.ct),
    coreDigest: toBase64Url(coreDigest),
    timestamp: fields.timestamp,
    manifestHead: toHex(verified.manifestHead),
    ownerId: input.signer.id,
    signature: toBase64Url(signature),
  });
}

/** Encrypt `inPath` under a fresh key into `outPath` (atomically), and hand the key to the service. */
export async function sealWeightsFile(input: {
  client: AdminClient;
  attested: AttestedService;
  signer: { id: string; privateKey: CryptoKey };
  inPath: string;
  outPath: string;
}): Promise<{ weightsDigest: string; bytes: number }> {
  const plaintext = new Uint8Array(readFileSync(input.inPath));
  const weightsDigest = `sha256:${toHex(await sha256(plaintext))}`;
  const manifest = input.attested.verified.manifest;
  if (!manifest?.models.some((m) => m.weightsDigest === weightsDigest)) {
    throw new ObscuraError('ERR_POLICY_VIOLATION', `the current manifest names no model with weights ${weightsDigest}: add it to the manifest first`);
  }
  const key = randomBytes(MODEL_KEY_BYTES);
  try {
    const sealed = await encryptWeights(plaintext, key);
    const tmp = `${input.outPath}.${process.pid}.tmp`;
    writeFileSync(tmp, sealed, { mode: 0o644 });
    // The key is handed over first: an encrypted file whose key the service does not hold is useless.
    await uploadModelKey({ client: input.client, attested: input.attested, signer: input.signer, weightsDigest, key });
    renameSync(tmp, input.outPath);
    return { weightsDigest, bytes: sealed.length };
  } finally {
    key.fill(0);
  }
}
