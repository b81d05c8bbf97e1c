/**
 * The simulated machine's TDX collateral, issued the way Intel's PCS serves it: TDX TCB info (v3) and
 * TD QE identity (v2) as {"<member>":{...},"signature":"<hex r||s>"} with the TCB Signing key's
 * signature over the member's exact bytes, the PCK CRL signed by the PCK CA, the root CA's CRL, and
 * the issuer chains PCS sends in its headers. Documents are issued fresh at `now` with Intel's 30-day
 * window. The TCB levels are written for this machine's PCK TCB and TEE_TCB_SVN, so the status the
 * verifier computes is the one asked for (`platformStatus`): UpToDate unless a test wants another.
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { bufferOf, sha256, toHex, utf8 } from '../../shared/bytes.ts';
import { ObscuraError } from '../../shared/errors.ts';
import { encodePem } from '../../shared/attestation/x509/pem.ts';
import type { TdxEvidenceCollateral } from '../../shared/attestation/evidence.ts';
import type { TcbLevelStatus } from '../../shared/attestation/tdx/tcb-info.ts';
import { SIM_TDX_BACKDATE_MS, SIM_TDX_PLATFORM, type SimulatedTdxChain } from './tdx-chain.ts';

/** Intel's PCS issues TCB info, QE identity and PCK CRLs for 30 days. */
export const SIM_TDX_COLLATERAL_VALIDITY_MS = 30 * 24 * 3600 * 1000;
const TCB_EVALUATION_DATA_NUMBER = 17;
const TCB_DATE = '2024-03-13T00:00:00Z';

/** TEE_TCB_SVN of the simulated TDX module: SVN 3 of module major version 1 (TDX 1.5), then the SEAM loader's. */
export const SIM_TDX_TEE_TCB_SVN: readonly number[] = Object.freeze([3, 1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
/** Intel signs its TDX modules with an all-zero MRSIGNERSEAM; production modules have no SEAM attributes. */
export const SIM_TDX_MRSIGNERSEAM = new Uint8Array(48);

/** What the simulated Quoting Enclave is: its identity in the QE identity document and in its report. */
export const SIM_TD_QE = Object.freeze({
  isvProdId: 2,
  isvSvn: 4,
  miscSelect: new Uint8Array(4),
  /** INIT | MODE64BIT, as Intel's TD QE reports. */
  attributes: Uint8Array.of(0x11, ...new Array<number>(15).fill(0)),
});

/** The simulated QE's MRSIGNER: not Intel's key, so no real QE identity would accept it. */
export async function simulatedQeMrSigner(): Promise<Uint8Array> {
  return sha256(utf8('obscura simulated TD quoting enclave signer'));
}

const upper = (bytes: Uint8Array) => toHex(bytes).toUpperCase();
const pcsDate = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');

interface LevelJson {
  tcb: { sgxtcbcomponents: { svn: number }[]; pcesvn: number; tdxtcbcomponents: { svn: number }[] };
  tcbDate: string;
  tcbStatus: TcbLevelStatus;
  advisoryIDs?: string[];
}

function level(status: TcbLevelStatus, sgx: readonly number[], pceSvn: number, tdx: readonly number[], advisoryIDs?: string[]): LevelJson {
  return {
    tcb: { sgxtcbcomponents: sgx.map((svn) => ({ svn })), pcesvn: pceSvn, tdxtcbcomponents: tdx.map((svn) => ({ svn })) },
    tcbDate: TCB_DATE,
    tcbStatus: status,
    ...(advisoryIDs ? { advisoryIDs } : {}),
  };
}

/**
 * Intel's levels, highest first. UpToDate: this platform's TCB is the top level. Any other status: a
 * newer TCB (one SVN above in every SGX component and in the TDX module's) is UpToDate, and this
 * platform's is the level below with that status, as after a TCB recovery.
 */
function tcbLevels(platformStatus: TcbLevelStatus): LevelJson[] {
  const p = SIM_TDX_PLATFORM;
  const tee = SIM_TDX_TEE_TCB_SVN;
  if (platformStatus === 'UpToDate') {
    return [level('UpToDate', p.sgxTcbComponents, p.pceSvn, tee), level('OutOfDate', p.sgxTcbComponents.map(() => 0), 0, tee.map((v, i) => (i === 2 ? 0 : v)), ['INTEL-SA-00837'])];
  }
  const newer = p.sgxTcbComponents.map((v) => v + 1);
  const newerTee = tee.map((v, i) => (i === 2 ? v + 1 : v));
  return [level('UpToDate', newer, p.pceSvn + 1, newerTee), level(platformStatus, p.sgxTcbComponents, p.pceSvn, tee, ['INTEL-SA-00960'])];
}

function tcbInfo(nowMs: number, platformStatus: TcbLevelStatus): Record<string, unknown> {
  const moduleAttributes = { mrsigner: upper(SIM_TDX_MRSIGNERSEAM), attributes: '0000000000000000', attributesMask: 'FFFFFFFFFFFFFFFF' };
  return {
    id: 'TDX',
    version: 3,
    issueDate: pcsDate(nowMs - SIM_TDX_BACKDATE_MS),
    nextUpdate: pcsDate(nowMs + SIM_TDX_COLLATERAL_VALIDITY_MS),
    fmspc: upper(SIM_TDX_PLATFORM.fmspc),
    pceId: upper(SIM_TDX_PLATFORM.pceId),
    tcbType: 0,
    tcbEvaluationDataNumber: TCB_EVALUATION_DATA_NUMBER,
    tdxModule: moduleAttributes,
    tdxModuleIdentities: [
      {
        id: `TDX_${SIM_TDX_TEE_TCB_SVN[1].toString(16).padStart(2, '0').toUpperCase()}`,
        ...moduleAttributes,
        tcbLevels: [{ tcb: { isvsvn: SIM_TDX_TEE_TCB_SVN[0] }, tcbDate: TCB_DATE, tcbStatus: 'UpToDate' }],
      },
    ],
    tcbLevels: tcbLevels(platformStatus),
  };
}

async function qeIdentity(nowMs: number): Promise<Record<string, unknown>> {
  return {
    id: 'TD_QE',
    version: 2,
    issueDate: pcsDate(nowMs - SIM_TDX_BACKDATE_MS),
    nextUpdate: pcsDate(nowMs + SIM_TDX_COLLATERAL_VALIDITY_MS),
    tcbEvaluationDataNumber: TCB_EVALUATION_DATA_NUMBER,
    miscselect: upper(SIM_TD_QE.miscSelect),
    miscselectMask: 'FFFFFFFF',
    attributes: upper(SIM_TD_QE.attributes),
    attributesMask: 'FBFFFFFFFFFFFFFF0000000000000000',
    mrsigner: upper(await simulatedQeMrSigner()),
    isvprodid: SIM_TD_QE.isvProdId,
    tcbLevels: [{ tcb: { isvsvn: SIM_TD_QE.isvSvn }, tcbDate: TCB_DATE, tcbStatus: 'UpToDate' }],
  };
}

/** A PCS-style signed document: the member's JSON text is what is signed, byte for byte. */
async function signedDocument(member: string, value: Record<string, unknown>, key: CryptoKey): Promise<Uint8Array> {
  const text = JSON.stringify(value);
  const signature = new Uint8Array(await crypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, key, bufferOf(utf8(text))));
  return utf8(`{"${member}":${text},"signature":"${toHex(signature)}"}`);
}

export interface SimulatedTdxCollateralOptions {
  /** The issue time (ms); windows run from a day before it to 30 days after. */
  readonly nowMs: number;
  /** The status TCB info gives this platform's TCB level. Default UpToDate. */
  readonly platformStatus?: TcbLevelStatus;
}

export async function issueSimulatedTdxCollateral(chain: SimulatedTdxChain, options: SimulatedTdxCollateralOptions): Promise<TdxEvidenceCollateral> {
  const { nowMs } = options;
  if (!Number.isFinite(nowMs)) throw new ObscuraError('ERR_USAGE', 'nowMs must be a time in milliseconds');
  x509.cryptoProvider.set(globalThis.crypto);
  const pckCa = new x509.X509Certificate(bufferOf(chain.pckCaDer));
  const pckCrl = await x509.X509CrlGenerator.create({
    issuer: pckCa.subject,
    thisUpdate: new Date(nowMs - SIM_TDX_BACKDATE_MS),
    nextUpdate: new Date(nowMs + SIM_TDX_COLLATERAL_VALIDITY_MS),
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    signingKey: chain.pckCaKey,
  });
  const tcbIssuerChain = encodePem(chain.tcbSigningDer) + encodePem(chain.rootDer);
  return {
    tcbInfoJson: await signedDocument('tcbInfo', tcbInfo(nowMs, options.platformStatus ?? 'UpToDate'), chain.tcbSigningKey),
    tcbInfoIssuerChainPem: tcbIssuerChain,
    qeIdentityJson: await signedDocument('enclaveIdentity', await qeIdentity(nowMs), chain.tcbSigningKey),
    qeIdentityIssuerChainPem: tcbIssuerChain,
    pckCrlDer: new Uint8Array(pckCrl.rawData),
    pckCrlIssuerChainPem: encodePem(chain.pckCaDer) + encodePem(chain.rootDer),
    rootCrlDer: chain.rootCrlDer.slice(),
  };
}
