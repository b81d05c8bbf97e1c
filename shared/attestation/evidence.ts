/**
 * Evidence as it travels (inside bundles and worker registrations): the platform's raw report and the
 * certificates it needs. Trusted roots are never part of it: they come from the verifier's policy.
 */
import { asRecord, fieldBytes, fieldString } from '../cbor.ts';
import { ObscuraError } from '../errors.ts';

export interface SevSnpEvidence {
  platform: 'sev-snp';
  report: Uint8Array; // 1184-byte ATTESTATION_REPORT
  vcek: Uint8Array; // DER
  ask: Uint8Array; // DER
}

/**
 * TDX collateral as Intel PCS serves it (or a PCCS caches it), shipped by the worker with its quote:
 * the signed JSON documents byte for byte as received (the signatures cover those exact bytes), DER
 * CRLs, and the PEM issuer chains PCS sends in its *-Issuer-Chain headers (URL-decoded). The PCK
 * chain itself is inside the quote (certification data type 5).
 */
export interface TdxEvidenceCollateral {
  tcbInfoJson: Uint8Array;
  tcbInfoIssuerChainPem: string;
  qeIdentityJson: Uint8Array;
  qeIdentityIssuerChainPem: string;
  pckCrlDer: Uint8Array;
  pckCrlIssuerChainPem: string;
  rootCrlDer: Uint8Array;
}

export interface TdxEvidence {
  platform: 'tdx';
  /** The raw TD quote (v4 or v5), as configfs-tsm or the QGS returns it. */
  quote: Uint8Array;
  collateral: TdxEvidenceCollateral;
}

export type Evidence = SevSnpEvidence | TdxEvidence;

/** A TD quote with a 3-certificate PCK chain is about 5 KiB. */
const MAX_TDX_QUOTE_BYTES = 64 * 1024;
/** PCS's TDX TCB info is a few KiB (about 10 with every TCB level); QE identity is smaller. */
const MAX_COLLATERAL_JSON_BYTES = 128 * 1024;
/** Intel's PCK CRLs grow with revocations; they stay well below this. */
const MAX_CRL_BYTES = 256 * 1024;
/** An issuer chain is two certificates of about 1 KiB each. */
const MAX_ISSUER_CHAIN_PEM_BYTES = 16 * 1024;

export function encodeEvidence(e: Evidence): Record<string, unknown> {
  if (e.platform === 'tdx') {
    const c = e.collateral;
    return {
      platform: e.platform,
      quote: e.quote,
      collateral: {
        tcbInfoJson: c.tcbInfoJson,
        tcbInfoIssuerChainPem: c.tcbInfoIssuerChainPem,
        qeIdentityJson: c.qeIdentityJson,
        qeIdentityIssuerChainPem: c.qeIdentityIssuerChainPem,
        pckCrlDer: c.pckCrlDer,
        pckCrlIssuerChainPem: c.pckCrlIssuerChainPem,
        rootCrlDer: c.rootCrlDer,
      },
    };
  }
  return { platform: e.platform, report: e.report, vcek: e.vcek, ask: e.ask };
}

function boundedBytes(m: Record<string, unknown>, key: string, where: string, maxBytes: number): Uint8Array {
  const v = fieldBytes(m, key, where);
  if (v.length === 0 || v.length > maxBytes) throw new ObscuraError('ERR_MALFORMED', `${where}.${key} must be 1 to ${maxBytes} bytes`);
  return v;
}

function boundedPem(m: Record<string, unknown>, key: string, where: string): string {
  const v = fieldString(m, key, where);
  if (v.length === 0 || v.length > MAX_ISSUER_CHAIN_PEM_BYTES) {
    throw new ObscuraError('ERR_MALFORMED', `${where}.${key} must be PEM text of at most ${MAX_ISSUER_CHAIN_PEM_BYTES} bytes`);
  }
  return v;
}

function parseTdxCollateral(value: unknown, where: string): TdxEvidenceCollateral {
  const c = asRecord(value, where);
  return {
    tcbInfoJson: boundedBytes(c, 'tcbInfoJson', where, MAX_COLLATERAL_JSON_BYTES),
    tcbInfoIssuerChainPem: boundedPem(c, 'tcbInfoIssuerChainPem', where),
    qeIdentityJson: boundedBytes(c, 'qeIdentityJson', where, MAX_COLLATERAL_JSON_BYTES),
    qeIdentityIssuerChainPem: boundedPem(c, 'qeIdentityIssuerChainPem', where),
    pckCrlDer: boundedBytes(c, 'pckCrlDer', where, MAX_CRL_BYTES),
    pckCrlIssuerChainPem: boundedPem(c, 'pckCrlIssuerChainPem', where),
    rootCrlDer: boundedBytes(c, 'rootCrlDer', where, MAX_CRL_BYTES),
  };
}

export function parseEvidence(value: unknown, where: string): Evidence {
  const m = asRecord(value, where);
  const platform = fieldString(m, 'platform', where);
  if (platform === 'sev-snp') {
    return { platform, report: fieldBytes(m, 'report', where), vcek: fieldBytes(m, 'vcek', where), ask: fieldBytes(m, 'ask', where) };
  }
  if (platform === 'tdx') {
    return { platform, quote: boundedBytes(m, 'quote', where, MAX_TDX_QUOTE_BYTES), collateral: parseTdxCollateral(m.collateral, `${where}.collateral`) };
  }
  throw new ObscuraError('ERR_UNSUPPORTED_VERSION', `${where}.platform "${platform}" is not supported`);
}
