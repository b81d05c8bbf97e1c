/**
 * The simulated SEV-SNP TEE for local deployments: it issues ATTESTATION_REPORTs in the real layout
 * (shared/attestation/sev-snp/report.ts encodes them), signed by a local VCEK whose chain ends at a
 * local ARK (chain.ts). The verifier is the same as for real hardware; only the pinned root differs.
 */
import { ObscuraError } from '../../shared/errors.ts';
import { bufferOf } from '../../shared/bytes.ts';
import { encodePem } from '../../shared/attestation/x509/pem.ts';
import type { GuestPolicyFields } from '../../shared/attestation/sev-snp/guest-policy.ts';
import { SNP_PRODUCT_CPUID, type SnpProductLine } from '../../shared/attestation/sev-snp/product.ts';
import {
  AUTHOR_KEY_DIGEST_BYTES,
  FAMILY_ID_BYTES,
  type FirmwareVersion,
  HOST_DATA_BYTES,
  ID_KEY_DIGEST_BYTES,
  IMAGE_ID_BYTES,
  MEASUREMENT_BYTES,
  REPORT_DATA_BYTES,
  REPORT_ID_MA_BYTES,
  type SnpReportBodyFields,
  encodeSnpReportBody,
} from '../../shared/attestation/sev-snp/report.ts';
import { assembleSnpReport } from '../../shared/attestation/sev-snp/signature.ts';
import type { TcbParts } from '../../shared/attestation/sev-snp/tcb.ts';
import { SIM_DEFAULT_TCB, type SimulatedChain, type SimulatedSigningKey, loadOrCreateSimulatedChain } from './chain.ts';

export type SimulatedReportVersion = 2 | 3 | 4 | 5;

/** Guest policy the simulator reports unless told otherwise: SMT allowed, nothing else (0x30000). */
export const SIM_DEFAULT_GUEST_POLICY: Partial<GuestPolicyFields> = Object.freeze({ smt: true });
/** PLATFORM_INFO the simulator reports: SMT, TSME, ECC enabled, alias check complete (0x27). */
export const SIM_PLATFORM_INFO = 0x27n;
const SIM_FIRMWARE: Readonly<Record<SnpProductLine, FirmwareVersion>> = Object.freeze({
  Milan: { major: 1, minor: 55, build: 21 },
  Genoa: { major: 1, minor: 55, build: 40 },
  Turin: { major: 1, minor: 58, build: 3 },
});

export interface SimulatedTeeOptions {
  /** Where the chain is persisted (created if missing). Use one directory per simulated machine. */
  readonly dir: string;
  /** Default 'Genoa'. */
  readonly productLine?: SnpProductLine;
  /** The platform TCB (and so the VCEK's SPLs). Default SIM_DEFAULT_TCB[productLine]. */
  readonly tcb?: TcbParts;
  /** Sign with a VCEK (default) or a VLEK (as a cloud provider's host would); the local ASK signs either. */
  readonly signingKey?: SimulatedSigningKey;
}

export interface SimulatedReportRequest {
  /** 64 bytes the guest binds into the report (e.g. a hash of its public key and a nonce). */
  readonly reportData: Uint8Array;
  /** The 48-byte launch measurement to report (the simulator cannot measure; the caller says). */
  readonly measurement: Uint8Array;
  /** Guest policy bits. Default SIM_DEFAULT_GUEST_POLICY. */
  readonly policy?: Partial<GuestPolicyFields>;
  /** 32 bytes; default zeros. */
  readonly hostData?: Uint8Array;
  /** Default 0. */
  readonly vmpl?: number;
  readonly guestSvn?: number;
  readonly familyId?: Uint8Array;
  readonly imageId?: Uint8Array;
  readonly idKeyDigest?: Uint8Array;
  readonly authorKeyDigest?: Uint8Array;
  /** Report layout version, 2 to 5. Default 3 (what current Genoa firmware produces). */
  readonly version?: SimulatedReportVersion;
  /**
   * Tests only: replace any encoded field (e.g. a reportedTcb or chipId the VCEK does not certify)
   * before signing, to produce validly signed but inconsistent evidence.
   */
  readonly overrides?: Partial<SnpReportBodyFields>;
}

export interface SimulatedEvidence {
  /** The 1184-byte report. */
  readonly report: Uint8Array;
  readonly signingKey: SimulatedSigningKey;
  readonly vcekDer: Uint8Array;
  readonly askDer: Uint8Array;
  readonly arkDer: Uint8Array;
}

const zeros = (length: number) => new Uint8Array(length);

function sized(value: Uint8Array | undefined, length: number, name: string): Uint8Array {
  if (value === undefined) return zeros(length);
  if (!(value instanceof Uint8Array) || value.length !== length) throw new ObscuraError('ERR_USAGE', `${name} must be ${length} bytes`);
  return value;
}

export class SimulatedSnpTee {
  readonly productLine: SnpProductLine;
  readonly tcb: TcbParts;
  readonly chipId: Uint8Array;
  /** Which key signs the reports; `vcekDer` is a VLEK when this is 'vlek'. */
  readonly signingKey: SimulatedSigningKey;
  /** The local root a policy pins to accept this simulator's evidence (DER and PEM). */
  readonly arkDer: Uint8Array;
  readonly arkPem: string;
  readonly askDer: Uint8Array;
  readonly vcekDer: Uint8Array;
  readonly vcekPem: string;
  readonly #chain: SimulatedChain;
  readonly #vcekKey: CryptoKey;

  private constructor(
    chain: SimulatedChain,
    productLine: SnpProductLine,
    tcb: TcbParts,
    signingKey: SimulatedSigningKey,
    vcekDer: Uint8Array,
    vcekKey: CryptoKey,
  ) {
    this.#chain = chain;
    this.signingKey = signingKey;
    this.productLine = productLine;
    this.tcb = tcb;
    this.chipId = chain.chipId;
    this.arkDer = chain.arkDer;
    this.arkPem = chain.arkPem;
    this.askDer = chain.askDer;
    this.vcekDer = vcekDer;
    this.vcekPem = encodePem(vcekDer);
    this.#vcekKey = vcekKey;
  }

  /** Open (or create on first use) the simulated TEE persisted in `options.dir`. */
  static async open(options: SimulatedTeeOptions): Promise<SimulatedSnpTee> {
    const productLine = options.productLine ?? 'Genoa';
    const tcb = Object.freeze({ ...(options.tcb ?? SIM_DEFAULT_TCB[productLine]) });
    const chain = await loadOrCreateSimulatedChain(options.dir);
    const signingKey = options.signingKey ?? 'vcek';
    const vcek = await chain.vcek(productLine, tcb, signingKey);
    return new SimulatedSnpTee(chain, productLine, tcb, signingKey, vcek.der, vcek.privateKey);
  }

  /** The evidence chain for a verifier: VCEK, ASK, ARK (the ARK is for pinning, not for sending). */
  get chain(): { readonly vcekDer: Uint8Array; readonly askDer: Uint8Array; readonly arkDer: Uint8Array; readonly arkPem: string } {
    return { vcekDer: this.vcekDer, askDer: this.askDer, arkDer: this.arkDer, arkPem: this.arkPem };
  }

  /** The fields of a report for `request`, before signing. */
  reportFields(request: SimulatedReportRequest): SnpReportBodyFields {
    const version = request.version ?? 3;
    if (![2, 3, 4, 5].includes(version)) throw new ObscuraError('ERR_USAGE', `cannot simulate report version ${version}`);
    const tcb = this.tcb;
    const fields: SnpReportBodyFields = {
      version,
      guestSvn: request.guestSvn ?? 0,
      policy: request.policy ?? SIM_DEFAULT_GUEST_POLICY,
      familyId: sized(request.familyId, FAMILY_ID_BYTES, 'familyId'),
      imageId: sized(request.imageId, IMAGE_ID_BYTES, 'imageId'),
      vmpl: request.vmpl ?? 0,
      currentTcb: tcb,
      platformInfo: SIM_PLATFORM_INFO,
      signerInfo: { authorKeyEn: request.authorKeyDigest !== undefined, maskChipKey: false, signingKey: this.signingKey },
      reportData: sized(request.reportData, REPORT_DATA_BYTES, 'reportData'),
      measurement: sized(request.measurement, MEASUREMENT_BYTES, 'measurement'),
      hostData: sized(request.hostData, HOST_DATA_BYTES, 'hostData'),
      idKeyDigest: sized(request.idKeyDigest, ID_KEY_DIGEST_BYTES, 'idKeyDigest'),
      authorKeyDigest: sized(request.authorKeyDigest, AUTHOR_KEY_DIGEST_BYTES, 'authorKeyDigest'),
      reportId: this.#chain.reportId,
      // All ones: no migration agent is bound to the guest.
      reportIdMa: new Uint8Array(REPORT_ID_MA_BYTES).fill(0xff),
      reportedTcb: tcb,
      ...(version >= 3 ? { cpuid: SNP_PRODUCT_CPUID[this.productLine] } : {}),
      productLine: this.productLine,
      chipId: this.chipId,
      committedTcb: tcb,
      currentFirmware: SIM_FIRMWARE[this.productLine],
      committedFirmware: SIM_FIRMWARE[this.productLine],
      launchTcb: tcb,
      ...(version >= 5 ? { launchMitVector: 0n, currentMitVector: 0n } : {}),
    };
    return { ...fields, ...request.overrides };
  }

  /** A signed ATTESTATION_REPORT (1184 bytes) for `request`. */
  async report(request: SimulatedReportRequest): Promise<Uint8Array> {
    const body = encodeSnpReportBody(this.reportFields(request));
    const signature = new Uint8Array(await crypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-384' }, this.#vcekKey, bufferOf(body)));
    return assembleSnpReport(body, signature);
  }

  /** The report together with the chain a verifier needs. */
  async evidence(request: SimulatedReportRequest): Promise<SimulatedEvidence> {
    return { report: await this.report(request), signingKey: this.signingKey, vcekDer: this.vcekDer, askDer: this.askDer, arkDer: this.arkDer };
  }
}

/** Open (or create) the simulated TEE in `options.dir`. */
export function openSimulatedSnpTee(options: SimulatedTeeOptions): Promise<SimulatedSnpTee> {
  return SimulatedSnpTee.open(options);
}

/** Tests: a signed report of a given layout version (2, 4 and 5 besides the default 3). */
export function simulatedReportOfVersion(
  tee: SimulatedSnpTee,
  version: SimulatedReportVersion,
  request: Omit<SimulatedReportRequest, 'version'>,
): Promise<Uint8Array> {
  return tee.report({ ...request, version });
}
