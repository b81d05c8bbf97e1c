/// <reference types="vite/client" />
/**
 * The same verifier inside workerd (run with a vitest-pool-workers config that includes this file):
 * the real vector's signature, chain and collateral steps, then full evidence from the test PKI.
 */
import { expect, it } from 'vitest';
import { ObscuraError } from '../../errors.ts';
import { fromBase64, toHex } from '../../bytes.ts';
import quoteUrl from '../../../test/vectors/tdx/spr-e4/quote.dat?inline';
import pckCrlUrl from '../../../test/vectors/tdx/spr-e4/pck_crl.der?inline';
import rootCrlUrl from '../../../test/vectors/tdx/spr-e4/root_crl.der?inline';
import tcbInfoJson from '../../../test/vectors/tdx/spr-e4/tcb_info.json?raw';
import qeIdentityJson from '../../../test/vectors/tdx/spr-e4/qe_identity.json?raw';
import tcbInfoIssuerChainPem from '../../../test/vectors/tdx/spr-e4/tcb_info_issuer_chain.pem?raw';
import qeIdentityIssuerChainPem from '../../../test/vectors/tdx/spr-e4/qe_identity_issuer_chain.pem?raw';
import pckCrlIssuerChainPem from '../../../test/vectors/tdx/spr-e4/pck_crl_issuer_chain.pem?raw';
import intelRoot from '../../../test/vectors/tdx/intel_sgx_root_ca.pem?raw';
import { verifyQuote } from './verify.ts';
import { verifyTdxEvidence } from './evidence.ts';
import { parseQuote } from './quote.ts';
import { makeEvidence, makeKeys } from './testkit.ts';

const dataUrl = (u: string) => fromBase64(u.slice(u.indexOf(',') + 1));

it('verifies in workerd', async () => {
  expect(navigator.userAgent).toBe('Cloudflare-Workers');
  const quote = dataUrl(quoteUrl);
  const collateral = {
    tcbInfoJson,
    tcbInfoIssuerChainPem,
    qeIdentityJson,
    qeIdentityIssuerChainPem,
    pckCrlDer: dataUrl(pckCrlUrl),
    pckCrlIssuerChainPem,
    rootCrlDer: dataUrl(rootCrlUrl),
  };
  const err = await verifyQuote(quote, { collateral, trustedRoots: [intelRoot], at: new Date('2023-07-01T00:00:00Z') }).catch((e) => e);
  expect(err).toBeInstanceOf(ObscuraError);
  expect(err.code).toBe('ERR_VALUE_MISMATCH');
  expect(err.message).toMatch(/SGX TCB .* below every TCB level/);

  const e = await makeEvidence(await makeKeys(), { realQuote: parseQuote(quote) });
  const facts = await verifyTdxEvidence({ quote: e.quote, collateral: e.collateral, trustedRoots: e.trustedRoots, at: e.at });
  expect(facts.tcbStatus).toBe('UpToDate');
  expect(facts.mrTd).toBe(toHex(parseQuote(quote).body.mrTd));
});
