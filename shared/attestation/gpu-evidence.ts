/**
 * GPU evidence as it travels in a worker registration, beside the CPU evidence: the GPU's signed SPDM
 * request and response and its device certificate chain (DER, leaf first, as the driver returns it).
 * Trusted roots are never part of it: they come from the manifest's GPU reference values.
 */
import { asRecord, fieldBytes, fieldString } from '../cbor.ts';
import { ObscuraError } from '../errors.ts';

export const GPU_KINDS = ['nvidia-h100'] as const;
export type GpuKind = (typeof GPU_KINDS)[number];

/** A worker machine has at most this many GPUs (an 8-GPU HGX board). */
export const MAX_GPUS_PER_WORKER = 8;
/** An H100's GET_MEASUREMENTS || MEASUREMENTS is about 4 KiB; SPDM 1.1 bounds it well below this. */
const MAX_SPDM_BYTES = 64 * 1024;
const MAX_CHAIN_CERTS = 8;
const MAX_CERT_BYTES = 16 * 1024;

export interface GpuEvidence {
  kind: GpuKind;
  /** GET_MEASUREMENTS || MEASUREMENTS, signed by the GPU's attestation key. */
  spdm: Uint8Array;
  /** DER certificates, leaf (attestation key) first. */
  certChain: Uint8Array[];
}

export function encodeGpuEvidence(e: GpuEvidence): Record<string, unknown> {
  return { kind: e.kind, spdm: e.spdm, certChain: e.certChain };
}

export function parseGpuEvidence(value: unknown, where: string): GpuEvidence {
  const m = asRecord(value, where);
  const kind = fieldString(m, 'kind', where);
  if (!(GPU_KINDS as readonly string[]).includes(kind)) throw new ObscuraError('ERR_UNSUPPORTED_VERSION', `${where}.kind "${kind}" is not supported`);
  const spdm = fieldBytes(m, 'spdm', where);
  if (spdm.length === 0 || spdm.length > MAX_SPDM_BYTES) throw new ObscuraError('ERR_MALFORMED', `${where}.spdm must be 1 to ${MAX_SPDM_BYTES} bytes`);
  const chain = m.certChain;
  if (!Array.isArray(chain) || chain.length === 0 || chain.length > MAX_CHAIN_CERTS) {
    throw new ObscuraError('ERR_MALFORMED', `${where}.certChain must be a list of 1 to ${MAX_CHAIN_CERTS} certificates`);
  }
  const certChain = chain.map((c, i) => {
    if (!(c instanceof Uint8Array) || c.length === 0 || c.length > MAX_CERT_BYTES) {
      throw new ObscuraError('ERR_MALFORMED', `${where}.certChain[${i}] must be a DER certificate of at most ${MAX_CERT_BYTES} bytes`);
    }
    return c;
  });
  return { kind: kind as GpuKind, spdm, certChain };
}

/** The list a registration carries; absent means no GPU evidence. */
export function parseGpuEvidenceList(value: unknown, where: string): GpuEvidence[] {
  if (value === undefined) return [];
  if (!Array.isArray(value) || value.length > MAX_GPUS_PER_WORKER) {
    throw new ObscuraError('ERR_MALFORMED', `${where} must be a list of at most ${MAX_GPUS_PER_WORKER} GPU evidences`);
  }
  return value.map((v, i) => parseGpuEvidence(v, `${where}[${i}]`));
}
