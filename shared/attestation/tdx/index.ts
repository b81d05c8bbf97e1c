/** Intel TDX quote verification: parse (quote.ts), verify (verify.ts), validate (validate.ts). */
export {
  parseQuote,
  INTEL_QE_VENDOR_ID,
  QUOTE_HEADER_BYTES,
  TD_QUOTE_BODY_V4_BYTES,
  TD_QUOTE_BODY_V5_TDX15_BYTES,
  type TdxQuote,
  type TdxQuoteHeader,
  type TdQuoteBody,
} from './quote.ts';
export { parseQeReport, type QeReport } from './qe-report.ts';
export { parsePckExtensions, SGX_EXTENSIONS_OID, type PckExtensions } from './pck-extensions.ts';
export { verifyPckChain, type VerifiedPck } from './pck-chain.ts';
export { verifyTcbSigned, type IntelTrust } from './tcb-signing.ts';
export { parseTcbInfo, verifyTcbInfo, type TdxTcbInfo, type TdxTcbLevel, type TcbLevelStatus } from './tcb-info.ts';
export { parseQeIdentity, verifyQeIdentity, matchQeIdentity, type QeIdentity } from './qe-identity.ts';
export { evaluateTcbStatus, checkTdxModule, TDX_TCB_STATUSES, type TdxTcbStatus, type TcbEvaluation } from './tcb-status.ts';
export {
  verifyQuote,
  verifyQuoteSignatures,
  loadTrustedRoots,
  type TdxCollateral,
  type VerifyTdxQuoteOptions,
  type VerifiedTdxQuote,
} from './verify.ts';
export { tdxFacts, type TdxFacts } from './facts.ts';
export { normalizeTdxPolicy, DEFAULT_ACCEPTED_TCB_STATUSES, type TdxPolicy, type HexChoice } from './policy.ts';
export { validateTdxFacts, isDebugTd } from './validate.ts';
export { verifyTdxEvidence, type TdxEvidenceInput } from './evidence.ts';
