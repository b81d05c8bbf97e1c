/**
 * The simulated Intel TDX machine for local deployments: it issues TD quotes (v4) in the real layout
 * (tdx-quote.ts), signed by its Quoting Enclave's attestation key, the QE report signed by the
 * machine's PCK key under a local "Intel SGX Root CA" (tdx-chain.ts), and ships the collateral a real
 * worker would fetch from Intel PCS or a PCCS (tdx-collateral.ts). The verifier is the same as for real
 * hardware (shared/attestation/tdx); only the trusted root differs.
 */
import { sha384, utf8 } from '../../shared/bytes.ts';
import { ObscuraError } from '../../shared/errors.ts';
import type { TdxEvidence, TdxEvidenceCollateral } from '../../shared/attestation/evidence.ts';
import type { TcbLevelStatus } from '../../shared/attestation/tdx/tcb-info.ts';
import { TDX_MEASUREMENT_BYTES, TDX_REPORT_DATA_BYTES } from '../../shared/attestation/tdx/quote.ts';
import { loadOrCreateSimulatedTdxChain, SIM_TDX_PLATFORM, type SimulatedTdxChain } from './tdx-chain.ts';
import { issueSimulatedTdxCollateral, SIM_TD_QE, SIM_TDX_MRSIGNERSEAM, SIM_TDX_TEE_TCB_SVN, simulatedQeMrSigner } from './tdx-collateral.ts';
import { writeTdxQuote, type TdReportBodyFields } from './tdx-quote.ts';

/** TD_ATTRIBUTES the simulator reports: SEPT_VE_DISABLE (bit 28) only, as production TDs set it. */
export const SIM_TD_ATTRIBUTES = Uint8Array.of(0, 0, 0, 0x10, 0, 0, 0, 0);
/** XFAM: x87, SSE, AVX, AVX-512, PK, AMX state, as a current Linux TD enables them. */
export const SIM_TD_XFAM = Uint8Array.of(0xe7, 0x1a, 0x06, 0, 0, 0, 0, 0);
/** TD_ATTRIBUTES bit 0: a debug TD. */
const TD_ATTRIBUTES_DEBUG = 0x01;
/** Intel's QE sends these 32 bytes as its auth data. */
const QE_AUTH_DATA = Uint8Array.from({ length: 32 }, (_, i) => i);

export interface SimulatedTdxOptions {
  /** Where the machine's chain is persisted (created if missing); one directory per simulated machine. */
  readonly dir: string;
  /** The status the shipped TCB info gives this platform. Default UpToDate. */
  readonly platformStatus?: TcbLevelStatus;
  /** The collateral's issue time; default Date.now. */
  readonly now?: () => number;
}

export interface SimulatedTdQuoteRequest {
  /** 64 bytes the TD binds into its report (e.g. a hash of its keys and a nonce). */
  readonly reportData: Uint8Array;
  /** The 48-byte MRTD to report (the simulator cannot measure; the caller says). */
  readonly mrTd: Uint8Array;
  /** Sets TD_ATTRIBUTES.DEBUG. */
  readonly debug?: boolean;
  /** RTMR0..3; default zeros (the simulated firmware extends nothing). */
  readonly rtmrs?: readonly [Uint8Array, Uint8Array, Uint8Array, Uint8Array];
  readonly mrConfigId?: Uint8Array;
  readonly mrOwner?: Uint8Array;
  /** Tests only: replace any body field before signing. */
  readonly overrides?: Partial<TdReportBodyFields>;
}

const zeros = (length: number) => new Uint8Array(length);

function sized(value: Uint8Array | undefined, length: number, name: string): Uint8Array {
  if (value === undefined) return zeros(length);
  if (!(value instanceof Uint8Array) || value.length !== length) throw new ObscuraError('ERR_USAGE', `${name} must be ${length} bytes`);
  return value;
}

/** The simulated TDX module's MRSEAM: the same on every simulated machine. */
export function simulatedMrSeam(): Promise<Uint8Array> {
  return sha384(utf8('obscura simulated TDX module 1.5'));
}

export class SimulatedTdxTee {
  readonly chain: SimulatedTdxChain;
  /** The local root a manifest lists to accept this machine's TDX evidence (DER and PEM). */
  readonly rootDer: Uint8Array;
  readonly rootPem: string;
  /** The PPID the machine's PCK certificate carries: what the verifier reports as its chip ID. */
  readonly ppid: Uint8Array;
  readonly platformStatus: TcbLevelStatus;
  readonly #now: () => number;
  readonly #mrSeam: Uint8Array;
  readonly #qeMrSigner: Uint8Array;
  readonly #qeMrEnclave: Uint8Array;

  private constructor(chain: SimulatedTdxChain, options: SimulatedTdxOptions, mrSeam: Uint8Array, qeMrSigner: Uint8Array, qeMrEnclave: Uint8Array) {
    this.chain = chain;
    this.rootDer = chain.rootDer;
    this.rootPem = chain.rootPem;
    this.ppid = chain.ppid;
    this.platformStatus = options.platformStatus ?? 'UpToDate';
    this.#now = options.now ?? Date.now;
    this.#mrSeam = mrSeam;
    this.#qeMrSigner = qeMrSigner;
    this.#qeMrEnclave = qeMrEnclave;
  }

  /** Open (or create on first use) the simulated TDX machine persisted in `options.dir`. */
  static async open(options: SimulatedTdxOptions): Promise<SimulatedTdxTee> {
    const chain = await loadOrCreateSimulatedTdxChain(options.dir);
    const qeMrEnclave = (await sha384(utf8('obscura simulated TD quoting enclave'))).subarray(0, 32);
    return new SimulatedTdxTee(chain, options, await simulatedMrSeam(), await simulatedQeMrSigner(), qeMrEnclave);
  }

  /** The TD report body fields for `request`, before signing. */
  bodyFields(request: SimulatedTdQuoteRequest): TdReportBodyFields {
    const tdAttributes = SIM_TD_ATTRIBUTES.slice();
    if (request.debug) tdAttributes[0] |= TD_ATTRIBUTES_DEBUG;
    const rtmrs = request.rtmrs ?? [zeros(48), zeros(48), zeros(48), zeros(48)];
    const fields: TdReportBodyFields = {
      teeTcbSvn: Uint8Array.from(SIM_TDX_TEE_TCB_SVN),
      mrSeam: this.#mrSeam,
      mrSignerSeam: SIM_TDX_MRSIGNERSEAM,
      seamAttributes: zeros(8),
      tdAttributes,
      xfam: SIM_TD_XFAM,
      mrTd: sized(request.mrTd, TDX_MEASUREMENT_BYTES, 'mrTd'),
      mrConfigId: sized(request.mrConfigId, TDX_MEASUREMENT_BYTES, 'mrConfigId'),
      mrOwner: sized(request.mrOwner, TDX_MEASUREMENT_BYTES, 'mrOwner'),
      mrOwnerConfig: zeros(TDX_MEASUREMENT_BYTES),
      rtmrs: [0, 1, 2, 3].map((i) => sized(rtmrs[i], TDX_MEASUREMENT_BYTES, `rtmrs[${i}]`)) as unknown as TdReportBodyFields['rtmrs'],
      reportData: sized(request.reportData, TDX_REPORT_DATA_BYTES, 'reportData'),
    };
    return { ...fields, ...request.overrides };
  }

  /** A signed TD quote (v4) for `request`, with the PCK chain inside. */
  async quote(request: SimulatedTdQuoteRequest): Promise<Uint8Array> {
    if (!(request.reportData instanceof Uint8Array) || !(request.mrTd instanceof Uint8Array)) {
      throw new ObscuraError('ERR_USAGE', 'a TD quote needs reportData and mrTd');
    }
    return writeTdxQuote({
      userData: new Uint8Array([...this.chain.qeId, 0, 0, 0, 0]),
      body: this.bodyFields(request),
      qeReport: {
        cpuSvn: Uint8Array.from(SIM_TDX_PLATFORM.sgxTcbComponents),
        miscSelect: SIM_TD_QE.miscSelect,
        isvExtProdId: zeros(16),
        attributes: SIM_TD_QE.attributes,
        mrEnclave: this.#qeMrEnclave,
        mrSigner: this.#qeMrSigner,
        configId: zeros(64),
        isvProdId: SIM_TD_QE.isvProdId,
        isvSvn: SIM_TD_QE.isvSvn,
        configSvn: 0,
        isvFamilyId: zeros(16),
      },
      qeAuthData: QE_AUTH_DATA,
      attestationKey: this.chain.attestationKey,
      pckKey: this.chain.pckLeafKey,
      pckChainPem: this.chain.pckChainPem,
    });
  }

  /** Collateral as PCS would serve it now for this platform. */
  collateral(): Promise<TdxEvidenceCollateral> {
    return issueSimulatedTdxCollateral(this.chain, { nowMs: this.#now(), platformStatus: this.platformStatus });
  }

  /** The quote with the collateral its verifier needs: what a TDX worker sends. */
  async evidence(request: SimulatedTdQuoteRequest): Promise<TdxEvidence> {
    return { platform: 'tdx', quote: await this.quote(request), collateral: await this.collateral() };
  }
}

/** Open (or create) the simulated TDX machine in `options.dir`. */
export function openSimulatedTdxTee(options: SimulatedTdxOptions): Promise<SimulatedTdxTee> {
  return SimulatedTdxTee.open(options);
}
