/**
 * `obscura verify-evidence sev-snp`: an AMD SEV-SNP attestation report, its VCEK, and the AMD roots.
 *
 * Roots and ASK: every self-signed certificate in --roots is a trusted ARK; nothing else is trusted.
 * The ASK comes from --ask when given, otherwise from the certificates in --roots that are not
 * self-signed (AMD's cert_chain / ask_ark.pem holds ASK then ARK, so that file may be passed as
 * --roots alone). Among several candidates the one whose subject is the VCEK's issuer is used.
 * An ASK is never trusted for being there: it must chain to a trusted ARK like any intermediate.
 */
import { z } from 'zod';
import { toHex } from '../../../../shared/bytes.ts';
import { ObscuraError } from '../../../../shared/errors.ts';
import { SevSnpReferenceSchema } from '../../../../shared/manifest/schema.ts';
import type { ParsedCertificate } from '../../../../shared/attestation/x509/index.ts';
import {
  type SnpReferencePolicy,
  type TcbVersion,
  parseSnpReport,
  validateSnpReport,
  verifySnpEvidence,
} from '../../../../shared/attestation/sev-snp/index.ts';
import {
  type CommonOptions,
  type VerifyOutcome,
  readBytes,
  readCertificates,
  readPolicyJson,
  short,
  step,
  toJson,
} from './common.ts';

export interface SevSnpFiles {
  readonly report: string;
  readonly vcek: string;
  readonly roots: string;
  readonly ask?: string;
}

const hexOf = (bytes: number) => z.string().regex(new RegExp(`^[0-9a-fA-F]{${bytes * 2}}$`), `expected ${bytes} bytes as hex`);

/**
 * The manifest's SEV-SNP reference values without trustedRoots (those come from --roots), plus the
 * exact-value checks the verifier supports: reportData, hostData, chipIds, vmpl.
 */
export const SevSnpCliPolicySchema = SevSnpReferenceSchema.omit({ trustedRoots: true }).extend({
  reportData: hexOf(64).optional(),
  hostData: hexOf(32).optional(),
  chipIds: z.array(hexOf(64)).min(1).optional(),
  vmpl: z.number().int().min(0).max(3).optional(),
});

export function sevSnpPolicyFromJson(json: unknown, where: string): SnpReferencePolicy {
  if (json && typeof json === 'object' && 'trustedRoots' in json) {
    throw new ObscuraError('ERR_USAGE', `${where}: trustedRoots does not belong in the policy; pass the roots with --roots`);
  }
  const parsed = SevSnpCliPolicySchema.safeParse(json);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
    throw new ObscuraError('ERR_USAGE', `${where} is not an SEV-SNP policy: ${issues}`);
  }
  const p = parsed.data;
  return {
    measurements: p.measurements,
    allowDebug: p.allowDebug,
    allowMigrationAgent: p.allowMigrationAgent,
    allowSmt: p.allowSmt,
    ...(p.minTcb ? { minimumTcb: p.minTcb } : {}),
    ...(p.reportData ? { reportData: p.reportData.toLowerCase() } : {}),
    ...(p.hostData ? { hostData: p.hostData.toLowerCase() } : {}),
    ...(p.chipIds ? { chipIds: p.chipIds.map((c) => c.toLowerCase()) } : {}),
    ...(p.vmpl !== undefined ? { vmpl: p.vmpl } : {}),
  };
}

/** The ASK to use: the candidate the VCEK names as its issuer, else the only candidate. */
function chooseAsk(candidates: readonly ParsedCertificate[], vcek: ParsedCertificate): ParsedCertificate | undefined {
  return candidates.find((c) => c.subject === vcek.issuer) ?? (candidates.length === 1 ? candidates[0] : undefined);
}

const tcb = (t: TcbVersion) => `bl=${t.bootloader} tee=${t.tee} snp=${t.snp} ucode=${t.microcode}${t.fmc === undefined ? '' : ` fmc=${t.fmc}`}`;

export async function verifySevSnp(files: SevSnpFiles, options: CommonOptions): Promise<VerifyOutcome> {
  const input = await step('parse', async () => {
    const policy = options.policyPath === undefined ? undefined : sevSnpPolicyFromJson(await readPolicyJson(options.policyPath), `--policy ${options.policyPath}`);
    const report = await readBytes('--report', files.report);
    parseSnpReport(report); // size, version, reserved fields: refuse malformed input before any crypto
    const vceks = await readCertificates('--vcek', files.vcek);
    if (vceks.length !== 1) throw new ObscuraError('ERR_MALFORMED', `--vcek ${files.vcek} must hold one certificate, it holds ${vceks.length}`);
    const vcek = vceks[0];
    const rootsFile = await readCertificates('--roots', files.roots);
    const arks = rootsFile.filter((c) => c.selfIssued);
    const askCandidates = files.ask === undefined ? rootsFile.filter((c) => !c.selfIssued) : (await readCertificates('--ask', files.ask)).filter((c) => !c.selfIssued);
    return { policy, report, vcek, arks, ask: chooseAsk(askCandidates, vcek) };
  });

  const facts = await step('verify', () => {
    if (input.arks.length === 0) throw new ObscuraError('ERR_UNTRUSTED_ROOT', `--roots ${files.roots} holds no self-signed root (ARK)`);
    return verifySnpEvidence({ report: input.report, vcek: input.vcek, ask: input.ask, trustedArks: input.arks, at: options.at });
  });

  if (input.policy) {
    const policy = input.policy;
    await step('validate', () => validateSnpReport(facts.report, policy));
  }

  const json = toJson(
    {
      evidence: 'sev-snp',
      at: options.at,
      ...facts,
      validated: input.policy !== undefined,
      root: { subject: facts.root.subject, fingerprintSha256: facts.root.fingerprintSha256 },
    },
    new Set(['report']),
  ) as Record<string, unknown>;

  const gp = facts.policy;
  const bits = (['smt', 'migrationAgent', 'debug', 'singleSocket'] as const).filter((b) => gp[b]).map((b) => b.toUpperCase());
  const summary = [
    `SEV-SNP report verified: version ${facts.version}, ${facts.productLine}, signed by the ${facts.signingKey.toUpperCase()} ` +
      `(${facts.endorsementKey.productName}), chain to "${facts.root.subject}", at ${options.at.toISOString()}`,
    `  measurement   ${toHex(facts.measurement)}`,
    `  report data   ${short(toHex(facts.reportData), 64)}`,
    `  chip ID       ${facts.chipIdMasked ? '(masked)' : short(toHex(facts.chipId), 32)}`,
    `  reported TCB  ${tcb(facts.reportedTcb)}`,
    `  guest policy  0x${gp.raw.toString(16)}${bits.length ? ` (${bits.join(', ')})` : ''}, VMPL ${facts.vmpl}`,
    ...(gp.debug ? ['  WARNING: the guest policy allows DEBUG: the host can read and change the guest\'s memory'] : []),
    ...(gp.migrationAgent ? ['  WARNING: the guest policy allows a migration agent'] : []),
    `  policy        ${input.policy ? `satisfied (${options.policyPath})` : 'not checked (no --policy)'}`,
  ];
  return { json, summary };
}
