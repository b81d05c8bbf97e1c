/**
 * X.509 path validation: leaf -> intermediates -> one pinned trust anchor, at an injected time.
 *
 * A thin layer over pkijs's CertificateChainValidationEngine that closes the gaps seen on the real
 * chains (TOOLCHAIN.md): pkijs takes the LAST element of `certs` as the leaf, so the path is built
 * here first and pkijs must confirm it starts at our leaf; pkijs ignores pathLenConstraint and
 * unknown critical extensions and accepts any signature algorithm, so those are enforced here; the
 * date is always explicit; revocation is checked here (crl.ts) so a stale CRL never passes.
 */
import { CertificateChainValidationEngine } from 'pkijs';
import { equalBytes } from '../../bytes.ts';
import { ObscuraError } from '../../errors.ts';
import { type CertificateInput, type ParsedCertificate, type PublicKeyKind, parseCertificate } from './certificate.ts';
import { type CrlInput, checkRevocation } from './crl.ts';
import { pkijsEngine } from './engine.ts';
import { checkSignatureAlgorithm } from './signature-algorithm.ts';

/** Critical extensions pkijs understands and processes (or that this layer checks itself). */
export const DEFAULT_ALLOWED_CRITICAL_EXTENSIONS: readonly string[] = Object.freeze([
  '2.5.29.15', // keyUsage
  '2.5.29.19', // basicConstraints
  '2.5.29.37', // extKeyUsage (purpose is for the caller's leaf profile)
  '2.5.29.17', // subjectAltName
  '2.5.29.30', // nameConstraints
  '2.5.29.32', // certificatePolicies
  '2.5.29.33', // policyMappings
  '2.5.29.36', // policyConstraints
  '2.5.29.54', // inhibitAnyPolicy
]);

/** Default cap on certificates between leaf and anchor (NVIDIA's device chains have three). */
export const DEFAULT_MAX_INTERMEDIATES = 4;

export interface LeafProfile {
  /** Accept a leaf whose basicConstraints says cA=true. Default false. */
  readonly allowCA?: boolean;
  /** Required public-key type of the leaf, e.g. 'ec-p384' for an AMD VCEK. */
  readonly publicKey?: PublicKeyKind;
}

export interface ValidateCertificatePathOptions {
  /** The end-entity certificate whose key the caller is about to trust. */
  readonly leaf: CertificateInput;
  /**
   * Certificates between leaf and anchor, any order. Each must lie on the path (an unused one is an
   * error, not noise); one byte-identical to a trusted root is dropped, so a full chain may be passed.
   */
  readonly intermediates?: readonly CertificateInput[];
  /** Pinned trust anchors: the path must end at exactly one of these (compared by signature, not name). */
  readonly trustedRoots: readonly CertificateInput[];
  /** The validation time: every certificate (and CRL) on the path must be valid at this instant. */
  readonly at: Date;
  /**
   * CRLs. When given (even as []), every certificate below the anchor needs a current, verifying CRL
   * from its issuer; when absent, no revocation is checked.
   */
  readonly crls?: readonly CrlInput[];
  /** Most certificates allowed between leaf and anchor. Default DEFAULT_MAX_INTERMEDIATES. */
  readonly maxIntermediates?: number;
  /** Extra critical-extension OIDs the caller knows how to process (on top of the default list). */
  readonly allowedCriticalExtensions?: readonly string[];
  readonly leafProfile?: LeafProfile;
}

export interface ValidatedCertificatePath {
  readonly leaf: ParsedCertificate;
  /** Leaf-side first. */
  readonly intermediates: readonly ParsedCertificate[];
  readonly root: ParsedCertificate;
  /** The whole path, leaf first, anchor last. */
  readonly path: readonly ParsedCertificate[];
}

/**
 * Validate `leaf` up to one of `trustedRoots` at `at`. Resolves with the path or throws ObscuraError:
 * ERR_MALFORMED (unparseable input), ERR_UNTRUSTED_ROOT (the given certificates link up but not to a
 * pinned anchor), ERR_CHAIN_INVALID (broken link, bad signature, unused intermediate, CA/pathLen/
 * critical-extension/algorithm/leaf-profile violation), ERR_NOT_YET_VALID / ERR_EXPIRED (a
 * certificate outside its validity at `at`), ERR_REVOKED, ERR_USAGE (bad options).
 */
export async function validateCertificatePath(options: ValidateCertificatePathOptions): Promise<ValidatedCertificatePath> {
  const { at } = options;
  if (!(at instanceof Date) || Number.isNaN(at.getTime())) {
    throw new ObscuraError('ERR_USAGE', 'validateCertificatePath needs an explicit, valid `at` date');
  }
  const maxIntermediates = options.maxIntermediates ?? DEFAULT_MAX_INTERMEDIATES;
  if (!Number.isSafeInteger(maxIntermediates) || maxIntermediates < 0) {
    throw new ObscuraError('ERR_USAGE', 'maxIntermediates must be a non-negative integer');
  }
  const leaf = parseCertificate(options.leaf);
  const roots = options.trustedRoots.map(parseCertificate);
  if (roots.length === 0) throw new ObscuraError('ERR_UNTRUSTED_ROOT', 'no trusted root was given');
  const isRoot = (c: ParsedCertificate) => roots.some((r) => equalBytes(r.der, c.der));
  if (isRoot(leaf)) throw new ObscuraError('ERR_CHAIN_INVALID', 'the leaf is itself a trusted root');
  const pool = (options.intermediates ?? []).map(parseCertificate).filter((c) => !isRoot(c));

  // Without CRLs, only validity depends on `at`: a path validated before is re-checked for time alone.
  const memoKey = options.crls === undefined ? pathMemoKey(leaf, pool, roots, maxIntermediates, options) : undefined;
  const memo = memoKey === undefined ? undefined : validatedPaths.get(memoKey);
  if (memo) {
    checkValidity(memo.path, at);
    return memo;
  }

  const engine = pkijsEngine();
  const path = await buildPath(leaf, pool, roots, maxIntermediates, engine);
  const root = path[path.length - 1];

  checkValidity(path, at);
  checkProfiles(path, options);

  // pkijs re-validates the exact path: signatures, name chaining, validity, CA bits, name
  // constraints and policies. The leaf goes LAST in `certs` (pkijs picks the last as the leaf).
  const chainEngine = new CertificateChainValidationEngine({
    trustedCerts: [root.pkijs],
    certs: [...path.slice(1, -1).reverse().map((c) => c.pkijs), leaf.pkijs],
    checkDate: at,
  });
  let result: Awaited<ReturnType<CertificateChainValidationEngine['verify']>>;
  try {
    result = await chainEngine.verify({}, engine);
  } catch (cause) {
    throw new ObscuraError('ERR_CHAIN_INVALID', `path validation failed: ${(cause as Error)?.message ?? cause}`, { cause });
  }
  if (result.result !== true) {
    throw new ObscuraError('ERR_CHAIN_INVALID', `path validation failed: ${result.resultMessage || `code ${result.resultCode}`}`);
  }
  const checked = result.certificatePath ?? [];
  if (checked.length !== path.length || checked.some((c, i) => !equalBytes(c.tbsView, path[i].pkijs.tbsView))) {
    throw new ObscuraError('ERR_CHAIN_INVALID', 'pkijs validated a different path than the one from the leaf');
  }

  if (options.crls !== undefined) await checkRevocation(path, options.crls, at);

  const validated = Object.freeze({ leaf, intermediates: Object.freeze(path.slice(1, -1)), root, path: Object.freeze(path) });
  if (memoKey !== undefined) {
    if (validatedPaths.size >= MAX_MEMOIZED_PATHS) validatedPaths.delete(validatedPaths.keys().next().value!);
    validatedPaths.set(memoKey, validated);
  }
  return validated;
}

/**
 * Paths validated without CRLs, by their inputs. parseCertificate returns one object per DER, so an
 * id per object identifies the bytes; the key also holds every option that changes the outcome.
 */
const MAX_MEMOIZED_PATHS = 256;
const validatedPaths = new Map<string, ValidatedCertificatePath>();
const certificateIds = new WeakMap<ParsedCertificate, number>();
let nextCertificateId = 0;

function certificateId(c: ParsedCertificate): number {
  let id = certificateIds.get(c);
  if (id === undefined) certificateIds.set(c, (id = nextCertificateId++));
  return id;
}

function pathMemoKey(
  leaf: ParsedCertificate,
  pool: readonly ParsedCertificate[],
  roots: readonly ParsedCertificate[],
  maxIntermediates: number,
  options: ValidateCertificatePathOptions,
): string {
  const ids = (cs: readonly ParsedCertificate[]) => cs.map(certificateId).sort((a, b) => a - b).join(',');
  return JSON.stringify([certificateId(leaf), ids(pool), ids(roots), maxIntermediates, options.allowedCriticalExtensions ?? [], options.leafProfile ?? null]);
}

async function signedBy(cert: ParsedCertificate, issuer: ParsedCertificate, engine: ReturnType<typeof pkijsEngine>): Promise<boolean> {
  if (!cert.pkijs.issuer.isEqual(issuer.pkijs.subject)) return false;
  try {
    return (await cert.pkijs.verify(issuer.pkijs, engine)) === true;
  } catch {
    return false;
  }
}

/** Walk from the leaf by issuer name and signature until a trusted root signs the current certificate. */
async function buildPath(
  leaf: ParsedCertificate,
  pool: ParsedCertificate[],
  roots: ParsedCertificate[],
  maxIntermediates: number,
  engine: ReturnType<typeof pkijsEngine>,
): Promise<ParsedCertificate[]> {
  const path = [leaf];
  const unused = [...pool];
  for (;;) {
    const current = path[path.length - 1];
    for (const root of roots) {
      if (await signedBy(current, root, engine)) {
        if (unused.length > 0) {
          throw new ObscuraError('ERR_CHAIN_INVALID', `intermediate "${unused[0].subject}" is not on the path from the leaf`);
        }
        return [...path, root];
      }
    }
    const named = unused.filter((c) => current.pkijs.issuer.isEqual(c.pkijs.subject));
    if (named.length === 0) {
      if (unused.length > 0) {
        throw new ObscuraError('ERR_CHAIN_INVALID', `no given certificate issued "${current.subject}" (issuer "${current.issuer}"); "${unused[0].subject}" does not link`);
      }
      const nameOnly = roots.some((r) => current.pkijs.issuer.isEqual(r.pkijs.subject));
      throw new ObscuraError(
        'ERR_UNTRUSTED_ROOT',
        nameOnly
          ? `"${current.subject}" names a trusted root as issuer but its signature does not verify under it`
          : `"${current.subject}" is issued by "${current.issuer}", which is not a trusted root`,
      );
    }
    let next: ParsedCertificate | undefined;
    for (const candidate of named) {
      if (candidate !== current && (await signedBy(current, candidate, engine))) {
        next = candidate;
        break;
      }
    }
    if (!next) throw new ObscuraError('ERR_CHAIN_INVALID', `the signature on "${current.subject}" does not verify under "${current.issuer}"`);
    if (next.selfIssued && (await signedBy(next, next, engine))) {
      throw new ObscuraError('ERR_UNTRUSTED_ROOT', `the chain ends at self-signed "${next.subject}", which is not a trusted root`);
    }
    if (path.length > maxIntermediates) {
      throw new ObscuraError('ERR_CHAIN_INVALID', `the path has more than ${maxIntermediates} intermediate certificate(s)`);
    }
    unused.splice(unused.indexOf(next), 1);
    path.push(next);
  }
}

function checkValidity(path: readonly ParsedCertificate[], at: Date): void {
  const t = at.getTime();
  for (const cert of path) {
    if (t < cert.notBefore.getTime()) {
      throw new ObscuraError('ERR_NOT_YET_VALID', `"${cert.subject}" is valid from ${cert.notBefore.toISOString()}, not at ${at.toISOString()}`);
    }
    if (t > cert.notAfter.getTime()) {
      throw new ObscuraError('ERR_EXPIRED', `"${cert.subject}" expired ${cert.notAfter.toISOString()}, before ${at.toISOString()}`);
    }
  }
}

function checkProfiles(path: readonly ParsedCertificate[], options: ValidateCertificatePathOptions): void {
  const allowedCritical = new Set([...DEFAULT_ALLOWED_CRITICAL_EXTENSIONS, ...(options.allowedCriticalExtensions ?? [])]);
  path.forEach((cert, index) => {
    // A trust anchor is trusted as pinned: its self-signature carries no weight, so only the
    // signatures the path relies on must use an allowed algorithm.
    if (index < path.length - 1) {
      checkSignatureAlgorithm(cert.pkijs.signatureAlgorithm, cert.pkijs.signature, `certificate "${cert.subject}"`);
    }
    for (const ext of cert.extensions) {
      if (ext.critical && !allowedCritical.has(ext.oid)) {
        throw new ObscuraError('ERR_CHAIN_INVALID', `"${cert.subject}" has an unknown critical extension ${ext.oid}`);
      }
    }
    if (index === 0) return;
    // Every issuer must be a CA allowed to sign certificates.
    if (!cert.basicConstraints?.ca) throw new ObscuraError('ERR_CHAIN_INVALID', `issuer "${cert.subject}" is not a CA (basicConstraints cA)`);
    if (cert.keyUsage && !cert.keyUsage.keyCertSign) {
      throw new ObscuraError('ERR_CHAIN_INVALID', `issuer "${cert.subject}" keyUsage lacks keyCertSign`);
    }
    // RFC 5280 §4.2.1.9: pathLenConstraint caps the non-self-issued intermediates below this CA.
    const below = path.slice(1, index).filter((c) => !c.selfIssued).length;
    if (cert.basicConstraints.pathLength !== undefined && below > cert.basicConstraints.pathLength) {
      throw new ObscuraError(
        'ERR_CHAIN_INVALID',
        `"${cert.subject}" allows ${cert.basicConstraints.pathLength} intermediate(s) below it, the path has ${below}`,
      );
    }
  });
  const leaf = path[0];
  const profile = options.leafProfile ?? {};
  if (leaf.basicConstraints?.ca && !profile.allowCA) {
    throw new ObscuraError('ERR_CHAIN_INVALID', `leaf "${leaf.subject}" is a CA certificate`);
  }
  if (profile.publicKey && leaf.publicKeyKind !== profile.publicKey) {
    throw new ObscuraError('ERR_CHAIN_INVALID', `leaf "${leaf.subject}" has a ${leaf.publicKeyKind} key, expected ${profile.publicKey}`);
  }
}
