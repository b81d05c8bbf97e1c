/**
 * The simulated NVIDIA H100 of local deployments: it answers GET_MEASUREMENTS (SPDM 1.1, the verifier's
 * nonce, every block, signed) the way a Hopper GPU in confidential-computing mode does: 64 SHA-384
 * measurement blocks, NVIDIA's opaque data (driver and VBIOS versions, measurement counts, FWID...),
 * and an ECDSA P-384 signature by the attestation key of a local 5-certificate chain (gpu-chain.ts).
 * The verifier is the same as for real GPUs; only the trusted root differs.
 */
import { createHash } from 'node:crypto';
import { bufferOf, concatBytes, fromHex, randomBytes, toHex, utf8 } from '../../shared/bytes.ts';
import { ObscuraError } from '../../shared/errors.ts';
import { NVIDIA_OPAQUE_FIELD, SHA384_DIGEST_BYTES, SPDM_NONCE_BYTES } from '../../shared/attestation/nvidia/index.ts';
import { loadOrCreateSimulatedGpuChain, type SimulatedGpuChain } from './gpu-chain.ts';
import { encodeGetMeasurementsRequest, encodeMeasurementsResponseUnsigned, encodeOpaqueData, type SpdmBlockInput } from './spdm-encoding.ts';

export const SIM_GPU_KIND = 'nvidia-h100';
/** Plausible current values (an H100 on the R550 driver branch); either may be overridden. */
export const SIM_GPU_DRIVER_VERSION = '550.90.07';
export const SIM_GPU_VBIOS_VERSION = '96.00.9F.00.01';
/**
 * How many times each measurement index (1..64) was extended, as an H100 reports them; an index with
 * count 0 is unused and its block is all zeros, like a real GPU's.
 */
const SIM_MEASUREMENT_COUNTS: readonly number[] = [
  0, 1, 4, 1, 1, 1, 1, 1, 0, 1, 0, 130, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 0, 0, 1, 1, 1, 0, 1, 1, 1,
  1, 1, 2, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
];
/** DMTF value type 1 (mutable firmware), as every H100 block reports it. */
const VALUE_TYPE_MUTABLE_FIRMWARE = 1;
const VBIOS_VERSION_BYTES = 8;
const VBIOS_VERSION = /^[0-9A-Fa-f]{2}(?:\.[0-9A-Fa-f]{2}){4}$/;

export interface SimulatedGpuOptions {
  /** The simulated machine's directory (shared with the simulated SEV-SNP TEE); created if missing. */
  readonly dir: string;
  /** Default SIM_GPU_DRIVER_VERSION. */
  readonly driverVersion?: string;
  /** Default SIM_GPU_VBIOS_VERSION. */
  readonly vbiosVersion?: string;
}

export interface SimulatedGpuEvidenceRequest {
  /** The verifier's 32-byte nonce, put in GET_MEASUREMENTS. */
  readonly nonce: Uint8Array;
  /**
   * Tests only: values the GPU reports (and signs) instead of its own, to produce validly signed
   * evidence with other measurements, driver version or FWID.
   */
  readonly overrides?: {
    readonly measurements?: Readonly<Record<number, Uint8Array>>;
    readonly driverVersion?: string;
    readonly fwid?: Uint8Array;
  };
}

export interface SimulatedGpuEvidence {
  /** GET_MEASUREMENTS || MEASUREMENTS (with its signature): what NVIDIA's tools call the attestation report. */
  readonly spdm: Uint8Array;
  /** Leaf first, root last, as the driver returns it. */
  readonly certChainDer: readonly Uint8Array[];
  readonly certChainPem: string;
}

const sha384 = (text: string) => new Uint8Array(createHash('sha384').update(utf8(text)).digest());

/** The simulated GPU's measurement per index (lowercase hex), for a given VBIOS: its reference values. */
export function simulatedGpuMeasurements(vbiosVersion = SIM_GPU_VBIOS_VERSION): Record<number, string> {
  const out: Record<number, string> = {};
  SIM_MEASUREMENT_COUNTS.forEach((count, i) => {
    const index = i + 1;
    out[index] = count === 0 ? '00'.repeat(SHA384_DIGEST_BYTES) : toHex(sha384(`obscura simulated GH100 measurement ${index} vbios ${vbiosVersion.toUpperCase()}`));
  });
  return out;
}

/** Reference values that admit this simulator's GPU evidence under `rootPem` (a manifest's `gpus` entry). */
export function simulatedGpuReference(rootPem: string, input: { required?: boolean } = {}) {
  const measurements: Record<string, string[]> = {};
  for (const [index, value] of Object.entries(simulatedGpuMeasurements())) measurements[index] = [value];
  return {
    trustedRoots: [rootPem],
    measurements,
    minDriverVersion: SIM_GPU_DRIVER_VERSION,
    vbiosVersions: [SIM_GPU_VBIOS_VERSION],
    required: input.required ?? true,
  };
}

/** "96.00.9F.00.01" -> the 8 little-endian bytes NVIDIA's opaque data carries (groups are bytes 3, 2, 1, 0, 4). */
function encodeVbiosVersion(version: string): Uint8Array {
  if (!VBIOS_VERSION.test(version)) throw new ObscuraError('ERR_USAGE', `VBIOS version "${version}" is not like 96.00.9F.00.01`);
  const groups = version.split('.').map((g) => parseInt(g, 16));
  const out = new Uint8Array(VBIOS_VERSION_BYTES);
  [out[3], out[2], out[1], out[0], out[4]] = groups;
  return out;
}

function nulTerminated(text: string): Uint8Array {
  return concatBytes(utf8(text), Uint8Array.of(0));
}

function u32s(values: readonly number[]): Uint8Array {
  const out = new Uint8Array(values.length * 4);
  const view = new DataView(out.buffer);
  values.forEach((v, i) => view.setUint32(i * 4, v, true));
  return out;
}

export class SimulatedNvidiaGpu {
  readonly kind = SIM_GPU_KIND;
  readonly driverVersion: string;
  readonly vbiosVersion: string;
  /** The local root a manifest lists to accept this GPU's evidence (DER and PEM). */
  readonly rootDer: Uint8Array;
  readonly rootPem: string;
  readonly certChainDer: readonly Uint8Array[];
  readonly certChainPem: string;
  readonly #chain: SimulatedGpuChain;

  private constructor(chain: SimulatedGpuChain, driverVersion: string, vbiosVersion: string) {
    this.#chain = chain;
    this.driverVersion = driverVersion;
    this.vbiosVersion = vbiosVersion.toUpperCase();
    this.rootDer = chain.rootDer;
    this.rootPem = chain.rootPem;
    this.certChainDer = chain.chainDer;
    this.certChainPem = chain.chainPem;
  }

  /** Open (or create on first use) the simulated GPU of the machine in `options.dir`. */
  static async open(options: SimulatedGpuOptions): Promise<SimulatedNvidiaGpu> {
    const vbios = options.vbiosVersion ?? SIM_GPU_VBIOS_VERSION;
    encodeVbiosVersion(vbios); // refuse a malformed version now rather than at the first request
    const chain = await loadOrCreateSimulatedGpuChain(options.dir);
    return new SimulatedNvidiaGpu(chain, options.driverVersion ?? SIM_GPU_DRIVER_VERSION, vbios);
  }

  /** The signed answer to GET_MEASUREMENTS(all blocks, `request.nonce`), with the certificate chain. */
  async evidence(request: SimulatedGpuEvidenceRequest): Promise<SimulatedGpuEvidence> {
    if (!(request.nonce instanceof Uint8Array) || request.nonce.length !== SPDM_NONCE_BYTES) {
      throw new ObscuraError('ERR_USAGE', `the GPU nonce must be ${SPDM_NONCE_BYTES} bytes`);
    }
    const overrides = request.overrides ?? {};
    const reference = simulatedGpuMeasurements(this.vbiosVersion);
    const blocks: SpdmBlockInput[] = SIM_MEASUREMENT_COUNTS.map((_, i) => {
      const index = i + 1;
      const value = overrides.measurements?.[index] ?? fromHex(reference[index]);
      return { index, valueType: VALUE_TYPE_MUTABLE_FIRMWARE, value };
    });
    const F = NVIDIA_OPAQUE_FIELD;
    const ascii = (text: string, padTo: number) => {
      const out = new Uint8Array(Math.max(padTo, text.length + 1));
      out.set(utf8(text));
      return out;
    };
    // The order and values of a real H100's opaque data (see test/vectors/nvidia/h100-a).
    const opaqueData = encodeOpaqueData([
      { type: F.VBIOS_VERSION, value: encodeVbiosVersion(this.vbiosVersion) },
      { type: F.BOARD_ID, value: u32s([0x3b1]) },
      { type: F.CHIP_SKU, value: ascii('882', 9) },
      { type: F.CHIP_SKU_MOD, value: ascii('0', 5) },
      { type: F.PROJECT, value: ascii('1010', 5) },
      { type: F.PROJECT_SKU, value: ascii('0200', 5) },
      { type: F.PROJECT_SKU_MOD, value: ascii('', 2) },
      { type: F.DRIVER_VERSION, value: nulTerminated(overrides.driverVersion ?? this.driverVersion) },
      { type: F.GPU_INFO, value: Uint8Array.of(0x80, 0x01, 0, 0, 0, 0, 0, 0) },
      { type: F.MSRSCNT, value: u32s(SIM_MEASUREMENT_COUNTS) },
      { type: F.CPRINFO, value: Uint8Array.of(0x00, 0xc0, 0x01, 0x00) },
      { type: F.NVDEC0_STATUS, value: Uint8Array.of(0x55) },
      { type: F.FWID, value: overrides.fwid ?? this.#chain.fwid },
      { type: F.PROTECTED_PCIE_STATUS, value: Uint8Array.of(0x55) },
    ]);
    const signed = concatBytes(
      encodeGetMeasurementsRequest(request.nonce),
      encodeMeasurementsResponseUnsigned({ blocks, responderNonce: randomBytes(SPDM_NONCE_BYTES), opaqueData }),
    );
    // WebCrypto's ECDSA signature is r || s (IEEE P1363), exactly SPDM's encoding.
    const signature = new Uint8Array(await crypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-384' }, this.#chain.attestationKey, bufferOf(signed)));
    return { spdm: concatBytes(signed, signature), certChainDer: this.certChainDer, certChainPem: this.certChainPem };
  }
}

/** Open (or create) the simulated GPU of the machine in `options.dir`. */
export function openSimulatedNvidiaGpu(options: SimulatedGpuOptions): Promise<SimulatedNvidiaGpu> {
  return SimulatedNvidiaGpu.open(options);
}
