/**
 * Cold and warm verification of the real evidence in test/vectors, per platform, in a fresh process:
 * `node --import tsx test/bench/evidence-platforms.ts PLATFORM [WARM_CALLS]`. Imports are loaded first
 * and not timed; the first call is the cold one. Prints one JSON line { coldMs, warmMs[] }.
 * TDX: the vector's platform has no TCB level in its collateral, so verifyQuote ends (after every
 * signature, chain, CRL and collateral check) with ERR_VALUE_MISMATCH at the level lookup; that is timed.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ObscuraError } from '../../shared/errors.ts';
import { verifySnpEvidence } from '../../shared/attestation/sev-snp/index.ts';
import { parseQuote, verifyQuote } from '../../shared/attestation/tdx/index.ts';
import { verifyNvidiaGpuEvidence } from '../../shared/attestation/nvidia/index.ts';
import { decodePem } from '../../shared/attestation/x509/pem.ts';
import { PROJECT_ROOT } from '../../worker-os/image-digest.ts';

const V = join(PROJECT_ROOT, 'test', 'vectors');
const bytes = (p: string) => new Uint8Array(readFileSync(join(V, p)));
const text = (p: string) => readFileSync(join(V, p), 'utf8');

function snp(dir: string): () => Promise<unknown> {
  const [ask, ark] = decodePem(text(`sev-snp/${dir}/ask_ark.pem`));
  const report = bytes(`sev-snp/${dir}/report.bin`);
  const vcek = bytes(`sev-snp/${dir}/vcek.der`);
  return () => verifySnpEvidence({ report, vcek, ask, trustedArks: [ark], at: new Date() });
}

const checks: Record<string, () => () => Promise<unknown>> = {
  'sev-snp-milan': () => snp('milan'),
  'sev-snp-genoa': () => snp('genoa'),
  'tdx-spr-e4': () => {
    const collateral = {
      tcbInfoJson: bytes('tdx/spr-e4/tcb_info.json'),
      tcbInfoIssuerChainPem: text('tdx/spr-e4/tcb_info_issuer_chain.pem'),
      qeIdentityJson: bytes('tdx/spr-e4/qe_identity.json'),
      qeIdentityIssuerChainPem: text('tdx/spr-e4/qe_identity_issuer_chain.pem'),
      pckCrlDer: bytes('tdx/spr-e4/pck_crl.der'),
      pckCrlIssuerChainPem: text('tdx/spr-e4/pck_crl_issuer_chain.pem'),
      rootCrlDer: bytes('tdx/spr-e4/root_crl.der'),
    };
    const roots = decodePem(text('tdx/intel_sgx_root_ca.pem'));
    const quote = bytes('tdx/spr-e4/quote.dat');
    return async () => {
      try {
        await verifyQuote(parseQuote(quote), { collateral, trustedRoots: roots, at: new Date('2023-07-01T00:00:00Z') });
      } catch (e) {
        if (!(e instanceof ObscuraError && e.code === 'ERR_VALUE_MISMATCH')) throw e;
      }
    };
  },
  'nvidia-h100': () => {
    const evidence = text('nvidia/h100-a/report.hex');
    const certChainPem = text('nvidia/h100-a/cert_chain.pem');
    const trustedRoots = decodePem(text('nvidia/nvidia_device_root.pem'));
    return () => verifyNvidiaGpuEvidence({ evidence, certChainPem, trustedRoots, at: new Date() });
  },
};

const [platform, warmArg] = process.argv.slice(2);
const make = checks[platform];
if (!make) {
  process.stderr.write(`usage: evidence-platforms.ts ${Object.keys(checks).join('|')} [WARM_CALLS]\n`);
  process.exit(2);
}
const check = make();
const t0 = performance.now();
await check();
const coldMs = performance.now() - t0;
const warmMs: number[] = [];
for (let i = 0; i < Number(warmArg ?? 20); i++) {
  const t = performance.now();
  await check();
  warmMs.push(performance.now() - t);
}
process.stdout.write(`${JSON.stringify({ platform, coldMs, warmMs })}\n`);
