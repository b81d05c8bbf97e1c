/**
 * `obscura verify-evidence KIND ...`: verify attestation evidence offline, against roots and at a time
 * the caller gives, with the same verifiers the service and clients use (shared/attestation). Without
 * --policy it checks signatures, chains, validity windows, revocation and internal consistency and
 * reports the facts (debug included); with --policy it also validates the facts against reference
 * values. Failures name the step (parse / verify / validate) and the error code; the exit status
 * tells the failure class apart (client/cli/exit-codes.ts).
 */
import { parseArgs } from 'node:util';
import { ObscuraError } from '../../../shared/errors.ts';
import type { CliIO, Command } from '../command.ts';
import { EXIT, exitCodeForClass } from '../exit-codes.ts';
import { type CommonOptions, StepFailure, type VerifyOutcome } from './verify-evidence/step.ts';

// Each platform's verifier (pkijs, asn1js, zod...) is imported only when that platform is asked for,
// so that `obscura --help` and the other commands do not pay for loading them.

const USAGE = `obscura verify-evidence KIND [options]

Verify attestation evidence offline against the roots you give, at --at (default: now).

  obscura verify-evidence sev-snp --report FILE --vcek FILE --roots FILE [--ask FILE]
      [--at ISO8601] [--policy FILE] [--json]
  obscura verify-evidence tdx --quote FILE --tcb-info FILE --tcb-info-chain FILE --qe-identity FILE
      --qe-identity-chain FILE --pck-crl FILE --pck-crl-chain FILE --root-crl FILE --roots FILE
      [--at ISO8601] [--policy FILE] [--json]
  obscura verify-evidence nvidia-gpu --evidence FILE --chain FILE --roots FILE [--nonce HEX]
      [--at ISO8601] [--policy FILE] [--json]

Files
  sev-snp     --report: the raw 1184-byte ATTESTATION_REPORT. --vcek: DER or PEM.
              --roots: PEM; every self-signed certificate in it is a trusted ARK. The ASK is taken
              from --ask (DER or PEM) or, without it, from the certificates in --roots that are not
              self-signed (so AMD's ask_ark.pem works as --roots alone); among several, the one that
              issued the VCEK. The ASK is never trusted by itself: it must chain to an ARK.
  tdx         --quote: the raw quote (v4/v5). --tcb-info, --qe-identity: Intel PCS JSON bodies as
              served. *-chain: the PEM issuer chains (URL-decoded headers). --pck-crl, --root-crl:
              DER or PEM. --roots: the Intel SGX Root CA (PEM or DER).
  nvidia-gpu  --evidence: hex of SPDM GET_MEASUREMENTS || MEASUREMENTS. --chain: PEM, leaf first.
              --roots: the NVIDIA device root(s), PEM. --nonce: the 32-byte nonce you asked with
              (64 hex digits); without it the nonce is reported, not checked.

Options
  --at ISO8601   verification time, e.g. 2023-07-01T00:00:00Z or 2023-07-01 (a time needs Z or an
                 offset); default now.
  --policy FILE  JSON reference values; the facts must satisfy them.
                   sev-snp: the manifest's SEV-SNP reference values without trustedRoots:
                     {"measurements": ["<96 hex>", ...], "allowDebug": false, "minTcb":
                     {"bootloader": 2, "tee": 0, "snp": 5, "microcode": 68}, "allowMigrationAgent":
                     false, "allowSmt": true} plus optional "reportData", "hostData", "chipIds", "vmpl".
                   tdx: the TDX verifier's TdxPolicy: mrTd, rtmrs, mrSeam, mrConfigId, mrOwner,
                     mrOwnerConfig, tdAttributes, xfam, reportData, allowDebug (default false),
                     acceptedTcbStatuses (default ["UpToDate"]).
                   nvidia-gpu: {"measurements": {"1": ["<hex>", ...], ...}, "allowUnlistedIndices",
                     "driverVersions", "minDriverVersion", "vbiosVersions"}.
                 Without --policy nothing is judged against reference values: a debug guest or an
                 out-of-date TCB verifies, and the facts say so.
  --json         print exactly one JSON object with the verified facts (hex in lowercase).

Exit status
  0 verified (and validated, with --policy)    1 usage error
  2 malformed input: cannot parse, wrong length, unsupported version, unreadable file
  3 a signature or certificate chain does not verify (or does not reach the given roots)
  4 a certificate, CRL or collateral outside its validity window, or revoked
  5 signatures hold but a value does not match: nonce, chip ID, VCEK TCB vs report, TCB status or
    a value the policy does not allow
Errors go to stderr as "<step> step failed: <message> (<ERR_CODE>)", step being parse, verify or validate.`;

interface KindSpec {
  readonly required: readonly string[];
  readonly optional: readonly string[];
  run(values: Record<string, string>, common: CommonOptions): Promise<VerifyOutcome>;
}

const KINDS: Record<string, KindSpec> = {
  'sev-snp': {
    required: ['report', 'vcek', 'roots'],
    optional: ['ask'],
    run: async (v, common) => (await import('./verify-evidence/sev-snp.ts')).verifySevSnp({ report: v.report, vcek: v.vcek, roots: v.roots, ...(v.ask === undefined ? {} : { ask: v.ask }) }, common),
  },
  tdx: {
    required: ['quote', 'tcb-info', 'tcb-info-chain', 'qe-identity', 'qe-identity-chain', 'pck-crl', 'pck-crl-chain', 'root-crl', 'roots'],
    optional: [],
    run: async (v, common) =>
      (await import('./verify-evidence/tdx.ts')).verifyTdx(
        {
          quote: v.quote,
          tcbInfo: v['tcb-info'],
          tcbInfoChain: v['tcb-info-chain'],
          qeIdentity: v['qe-identity'],
          qeIdentityChain: v['qe-identity-chain'],
          pckCrl: v['pck-crl'],
          pckCrlChain: v['pck-crl-chain'],
          rootCrl: v['root-crl'],
          roots: v.roots,
        },
        common,
      ),
  },
  'nvidia-gpu': {
    required: ['evidence', 'chain', 'roots'],
    optional: ['nonce'],
    run: async (v, common) => (await import('./verify-evidence/nvidia-gpu.ts')).verifyNvidiaGpu({ evidence: v.evidence, chain: v.chain, roots: v.roots, ...(v.nonce === undefined ? {} : { nonce: v.nonce }) }, common),
  },
};

class UsageError extends Error {}

const ISO_DATE = /^\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2}))?$/;

/** --at: an ISO 8601 date, or date and time with a zone (a zoneless time would be the host's local time). */
export function parseAt(text: string | undefined, now = new Date()): Date {
  if (text === undefined) return now;
  const at = new Date(text);
  if (!ISO_DATE.test(text) || Number.isNaN(at.getTime())) {
    throw new UsageError(`--at "${text}" is not an ISO 8601 date (e.g. 2023-07-01 or 2023-07-01T00:00:00Z)`);
  }
  return at;
}

function parse(argv: string[]): { kind: string; spec: KindSpec; values: Record<string, string>; json: boolean; common: CommonOptions } {
  const [kind, ...rest] = argv;
  if (kind === undefined || kind.startsWith('-')) throw new UsageError(`name the kind of evidence: ${Object.keys(KINDS).join(', ')}`);
  const spec = Object.hasOwn(KINDS, kind) ? KINDS[kind] : undefined;
  if (!spec) throw new UsageError(`unknown kind of evidence "${kind}" (known: ${Object.keys(KINDS).join(', ')})`);
  const options: Record<string, { type: 'string' | 'boolean' }> = { at: { type: 'string' }, policy: { type: 'string' }, json: { type: 'boolean' } };
  for (const name of [...spec.required, ...spec.optional]) options[name] = { type: 'string' };
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args: rest, options, strict: true, allowPositionals: false });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const values = parsed.values as Record<string, string | boolean | undefined>;
  const missing = spec.required.filter((name) => typeof values[name] !== 'string' || values[name] === '');
  if (missing.length) throw new UsageError(`${kind} needs ${missing.map((m) => `--${m} FILE`).join(', ')}`);
  for (const name of [...spec.optional, 'policy', 'at']) {
    if (values[name] === '') throw new UsageError(`--${name} needs a value`);
  }
  const strings: Record<string, string> = {};
  for (const [k, v] of Object.entries(values)) if (typeof v === 'string') strings[k] = v;
  if (strings.nonce !== undefined) {
    if (!/^[0-9a-fA-F]{64}$/.test(strings.nonce)) throw new UsageError('--nonce must be 32 bytes as 64 hex digits');
    strings.nonce = strings.nonce.toLowerCase();
  }
  const common: CommonOptions = { at: parseAt(strings.at), ...(strings.policy === undefined ? {} : { policyPath: strings.policy }) };
  return { kind, spec, values: strings, json: values.json === true, common };
}

async function run(argv: string[], io: CliIO): Promise<number> {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(argv);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    io.err(`obscura verify-evidence: ${e.message}\n(obscura verify-evidence --help for usage)`);
    return EXIT.USAGE;
  }
  const { kind, spec, values, json, common } = parsed;
  let outcome: VerifyOutcome;
  try {
    outcome = await spec.run(values, common);
  } catch (e) {
    if (e instanceof StepFailure) {
      io.err(`obscura verify-evidence ${kind}: ${e.step} step failed: ${e.error.message} (${e.error.code})`);
      return exitCodeForClass(e.error.failureClass);
    }
    if (e instanceof ObscuraError) {
      io.err(`obscura verify-evidence ${kind}: ${e.message} (${e.code})`);
      return exitCodeForClass(e.failureClass);
    }
    throw e;
  }
  if (json) io.out(JSON.stringify(outcome.json));
  else io.out(outcome.summary.join('\n'));
  return EXIT.OK;
}

export const verifyEvidenceCommand: Command = {
  name: 'verify-evidence',
  summary: 'verify SEV-SNP, TDX or NVIDIA GPU attestation evidence offline against given roots',
  usage: USAGE,
  run,
};
