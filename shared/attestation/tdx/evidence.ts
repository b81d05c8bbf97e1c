/**
 * One call for the common case: parse, verify against injected roots, collateral and time, then
 * validate against the policy (whose defaults refuse debug TDs and any TCB status but UpToDate).
 */
import { parseQuote } from './quote.ts';
import { tdxFacts, type TdxFacts } from './facts.ts';
import type { TdxPolicy } from './policy.ts';
import { validateTdxFacts } from './validate.ts';
import { verifyQuote, type TdxCollateral } from './verify.ts';

export interface TdxEvidenceInput {
  /** The raw quote, as configfs-tsm or the QGS returns it. */
  readonly quote: Uint8Array;
  readonly collateral: TdxCollateral;
  /** Intel SGX Root CA(s), DER or PEM, from the verifier's own policy. */
  readonly trustedRoots: readonly (Uint8Array | string)[];
  readonly at: Date;
  readonly policy?: TdxPolicy;
}

/** Returns the verified, validated facts. Throws ObscuraError only. */
export async function verifyTdxEvidence(input: TdxEvidenceInput): Promise<TdxFacts> {
  const quote = parseQuote(input.quote);
  const verified = await verifyQuote(quote, { collateral: input.collateral, trustedRoots: input.trustedRoots, at: input.at });
  return validateTdxFacts(tdxFacts(verified), input.policy);
}
