/**
 * `obscura verify-evidence nvidia-gpu`: NVIDIA H100 evidence (hex of SPDM GET_MEASUREMENTS ‖
 * MEASUREMENTS, as the driver returns it), its device certificate chain (PEM, leaf first) and the
 * NVIDIA roots. The same steps as verifyNvidiaGpuEvidence, run one by one so a failure names its step.
 * Revocation is not checked: NVIDIA publishes it by OCSP only, which an offline verifier cannot ask.
 */
import { ObscuraError } from '../../../../shared/errors.ts';
import {
  type NvidiaGpuPolicy,
  nvidiaGpuFacts,
  nvidiaGpuPolicy,
  parseNvidiaSpdmEvidence,
  validateNvidiaGpuFacts,
  verifyNvidiaSpdmEvidence,
} from '../../../../shared/attestation/nvidia/index.ts';
import { type CommonOptions, type VerifyOutcome, readCertificates, readPolicyJson, readText, step, toJson } from './common.ts';

export interface NvidiaGpuFiles {
  readonly evidence: string;
  readonly chain: string;
  readonly roots: string;
  /** The nonce the verifier chose (64 hex digits), already checked for form. */
  readonly nonce?: string;
}

export function nvidiaPolicyFromJson(json: unknown, where: string): NvidiaGpuPolicy {
  try {
    return nvidiaGpuPolicy(json);
  } catch (e) {
    if (e instanceof ObscuraError) throw new ObscuraError(e.code, `${where}: ${e.message}`, { cause: e });
    throw e;
  }
}

export async function verifyNvidiaGpu(files: NvidiaGpuFiles, options: CommonOptions): Promise<VerifyOutcome> {
  const input = await step('parse', async () => {
    const policy = options.policyPath === undefined ? undefined : nvidiaPolicyFromJson(await readPolicyJson(options.policyPath), `--policy ${options.policyPath}`);
    // Hex may be wrapped over lines; whitespace is not part of it.
    const evidence = parseNvidiaSpdmEvidence((await readText('--evidence', files.evidence)).replace(/\s+/g, ''));
    const chain = await readCertificates('--chain', files.chain);
    const roots = await readCertificates('--roots', files.roots);
    return { policy, evidence, chain, roots };
  });

  const chain = await step('verify', () =>
    verifyNvidiaSpdmEvidence(input.evidence, {
      certChain: input.chain,
      trustedRoots: input.roots,
      at: options.at,
      ...(files.nonce === undefined ? {} : { expectedNonce: files.nonce }),
    }),
  );
  const facts = nvidiaGpuFacts(input.evidence);

  if (input.policy) {
    const policy = input.policy;
    await step('validate', () => validateNvidiaGpuFacts(facts, policy));
  }

  const { fields: _rawFields, ...opaque } = facts.opaque;
  const json = toJson({
    evidence: 'nvidia-gpu',
    at: options.at,
    validated: input.policy !== undefined,
    nonceChecked: files.nonce !== undefined,
    nonce: facts.nonce,
    responderNonce: facts.responderNonce,
    measurements: facts.measurements,
    opaque,
    attestationCertificate: { subject: chain.leaf.subject, serialNumber: chain.leaf.serialNumberHex, notAfter: chain.leaf.notAfter },
    root: chain.path[chain.path.length - 1].subject,
  }) as Record<string, unknown>;

  const count = Object.keys(facts.measurements).length;
  const summary = [
    `NVIDIA GPU evidence verified: SPDM MEASUREMENTS signed by "${chain.leaf.subject}", chain to "${chain.path[chain.path.length - 1].subject}", at ${options.at.toISOString()}`,
    `  nonce         ${facts.nonce} (${files.nonce === undefined ? 'not checked: no --nonce' : 'matches --nonce'})`,
    `  measurements  ${count} blocks`,
    ...(opaque.driverVersion ? [`  driver        ${opaque.driverVersion}`] : []),
    ...(opaque.vbiosVersion ? [`  VBIOS         ${opaque.vbiosVersion}`] : []),
    `  policy        ${input.policy ? `satisfied (${options.policyPath})` : 'not checked (no --policy)'}`,
  ];
  return { json, summary };
}
