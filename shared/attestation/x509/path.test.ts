import 'reflect-metadata';
import { readFileSync } from 'node:fs';
import * as x509 from '@peculiar/x509';
import { beforeAll, describe, expect, it } from 'vitest';
import { ObscuraError } from '../../errors.ts';
import {
  type ParsedCertificate,
  type ValidateCertificatePathOptions,
  parseCertificate,
  parseCertificates,
  validateCertificatePath,
} from './index.ts';

const VECTORS = new URL('../../../test/vectors/', import.meta.url);
const text = (p: string) => readFileSync(new URL(p, VECTORS), 'utf8');
const bytes = (p: string) => new Uint8Array(readFileSync(new URL(p, VECTORS)));

async function expectCode(promise: Promise<unknown>, code: string): Promise<void> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error, `expected ${code}`).toBeInstanceOf(ObscuraError);
  expect((error as ObscuraError).code, (error as Error).message).toBe(code);
}

// ---- synthetic chains (P-256, fast) ----
x509.cryptoProvider.set(globalThis.crypto);
const EC_KEY = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const EC_SIGN = { name: 'ECDSA', hash: 'SHA-256' } as const;
const NOT_BEFORE = new Date('2024-01-01T00:00:00Z');
const NOT_AFTER = new Date('2030-01-01T00:00:00Z');
const AT = new Date('2025-06-01T00:00:00Z');

interface Node {
  cert: x509.X509Certificate;
  der: Uint8Array;
  keys: CryptoKeyPair;
  name: string;
}

let serial = 1;
async function makeCert(opts: {
  name: string;
  issuer?: Node;
  ca?: boolean;
  pathLength?: number;
  keyUsage?: x509.KeyUsageFlags;
  extensions?: x509.Extension[];
  notBefore?: Date;
  notAfter?: Date;
  keys?: CryptoKeyPair;
  signingKey?: CryptoKey;
  signingAlgorithm?: Algorithm | EcdsaParams | RsaPssParams;
}): Promise<Node> {
  const keys = opts.keys ?? ((await crypto.subtle.generateKey(EC_KEY, true, ['sign', 'verify'])) as CryptoKeyPair);
  const name = `CN=${opts.name}, O=Test`;
  const extensions: x509.Extension[] = [];
  if (opts.ca !== undefined) extensions.push(new x509.BasicConstraintsExtension(opts.ca, opts.pathLength, true));
  const ku = opts.keyUsage ?? (opts.ca ? x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign : x509.KeyUsageFlags.digitalSignature);
  extensions.push(new x509.KeyUsagesExtension(ku, true));
  extensions.push(...(opts.extensions ?? []));
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: (serial++).toString(16).padStart(4, '0'),
    subject: name,
    issuer: opts.issuer?.name ?? name,
    notBefore: opts.notBefore ?? NOT_BEFORE,
    notAfter: opts.notAfter ?? NOT_AFTER,
    signingAlgorithm: opts.signingAlgorithm ?? EC_SIGN,
    publicKey: keys.publicKey,
    signingKey: opts.signingKey ?? opts.issuer?.keys.privateKey ?? keys.privateKey,
    extensions,
  });
  return { cert, der: new Uint8Array(cert.rawData), keys, name };
}

describe('validateCertificatePath: synthetic chains', () => {
  let root: Node;
  let i1: Node;
  let i2: Node;
  let leaf: Node;
  let base: ValidateCertificatePathOptions;

  beforeAll(async () => {
    root = await makeCert({ name: 'Root', ca: true });
    i1 = await makeCert({ name: 'Int 1', issuer: root, ca: true, pathLength: 1 });
    i2 = await makeCert({ name: 'Int 2', issuer: i1, ca: true, pathLength: 0 });
    leaf = await makeCert({ name: 'Leaf', issuer: i2 });
    base = { leaf: leaf.der, intermediates: [i1.der, i2.der], trustedRoots: [root.der], at: AT };
  });

  it('accepts a valid path and returns it leaf first', async () => {
    const result = await validateCertificatePath(base);
    expect(result.path.map((c) => c.subject)).toEqual(['CN=Leaf, O=Test', 'CN=Int 2, O=Test', 'CN=Int 1, O=Test', 'CN=Root, O=Test']);
    expect(result.leaf.subject).toBe('CN=Leaf, O=Test');
    expect(result.root.subject).toBe('CN=Root, O=Test');
    expect(result.intermediates).toHaveLength(2);
  });

  it('accepts intermediates in any order, PEM input, and a copy of the root among them', async () => {
    const pem = (n: Node) => n.cert.toString('pem');
    const result = await validateCertificatePath({ ...base, leaf: pem(leaf), intermediates: [root.der, i2.der, pem(i1)], trustedRoots: [pem(root)] });
    expect(result.path).toHaveLength(4);
  });

  it('refuses an intermediate that is not on the path (no silent extras)', async () => {
    const stray = await makeCert({ name: 'Stray', issuer: root, ca: true });
    await expectCode(validateCertificatePath({ ...base, intermediates: [i1.der, i2.der, stray.der] }), 'ERR_CHAIN_INVALID');
  });

  it('refuses a forged leaf that names a real issuer (the trap of pkijs taking the last cert as leaf)', async () => {
    const attacker = (await crypto.subtle.generateKey(EC_KEY, true, ['sign', 'verify'])) as CryptoKeyPair;
    const forged = await makeCert({ name: 'Leaf', issuer: i2, signingKey: attacker.privateKey });
    await expectCode(validateCertificatePath({ ...base, leaf: forged.der }), 'ERR_CHAIN_INVALID');
  });

  it('refuses a path without its intermediates, or to an untrusted or look-alike root', async () => {
    await expectCode(validateCertificatePath({ ...base, intermediates: [] }), 'ERR_UNTRUSTED_ROOT');
    const other = await makeCert({ name: 'Other Root', ca: true });
    await expectCode(validateCertificatePath({ ...base, trustedRoots: [other.der] }), 'ERR_UNTRUSTED_ROOT');
    const lookalike = await makeCert({ name: 'Root', ca: true });
    await expectCode(validateCertificatePath({ ...base, trustedRoots: [lookalike.der] }), 'ERR_UNTRUSTED_ROOT');
    await expectCode(validateCertificatePath({ ...base, trustedRoots: [] }), 'ERR_UNTRUSTED_ROOT');
    // The chain's own (untrusted) root among the intermediates.
    const fakeRoot = await makeCert({ name: 'Root', ca: true });
    const fakeInt = await makeCert({ name: 'Int 1', issuer: fakeRoot, ca: true });
    const fakeInt2 = await makeCert({ name: 'Int 2', issuer: fakeInt, ca: true });
    const fakeLeaf = await makeCert({ name: 'Leaf', issuer: fakeInt2 });
    await expectCode(validateCertificatePath({ ...base, leaf: fakeLeaf.der, intermediates: [fakeInt.der, fakeInt2.der, fakeRoot.der] }), 'ERR_UNTRUSTED_ROOT');
    const selfSigned = await makeCert({ name: 'Self' });
    await expectCode(validateCertificatePath({ ...base, leaf: selfSigned.der, intermediates: [] }), 'ERR_UNTRUSTED_ROOT');
  });

  it('refuses the root itself as the leaf', async () => {
    await expectCode(validateCertificatePath({ ...base, leaf: root.der, intermediates: [] }), 'ERR_CHAIN_INVALID');
  });

  it('enforces pathLenConstraint, which pkijs ignores', async () => {
    const tightRoot = await makeCert({ name: 'Tight Root', ca: true, pathLength: 1 });
    const a = await makeCert({ name: 'A', issuer: tightRoot, ca: true });
    const b = await makeCert({ name: 'B', issuer: a, ca: true });
    const l = await makeCert({ name: 'L', issuer: b });
    await expectCode(validateCertificatePath({ leaf: l.der, intermediates: [a.der, b.der], trustedRoots: [tightRoot.der], at: AT }), 'ERR_CHAIN_INVALID');
    const l1 = await makeCert({ name: 'L1', issuer: a });
    await expect(validateCertificatePath({ leaf: l1.der, intermediates: [a.der], trustedRoots: [tightRoot.der], at: AT })).resolves.toBeDefined();
    // An intermediate with pathLen 0 cannot have a CA below it.
    const c0 = await makeCert({ name: 'C0', issuer: root, ca: true, pathLength: 0 });
    const d = await makeCert({ name: 'D', issuer: c0, ca: true });
    const l2 = await makeCert({ name: 'L2', issuer: d });
    await expectCode(validateCertificatePath({ leaf: l2.der, intermediates: [c0.der, d.der], trustedRoots: [root.der], at: AT }), 'ERR_CHAIN_INVALID');
  });

  it('caps the number of intermediates', async () => {
    await expectCode(validateCertificatePath({ ...base, maxIntermediates: 1 }), 'ERR_CHAIN_INVALID');
    await expect(validateCertificatePath({ ...base, maxIntermediates: 2 })).resolves.toBeDefined();
  });

  it('refuses unknown critical extensions unless allow-listed', async () => {
    const oid = '1.3.6.1.4.1.55555.1';
    const critical = await makeCert({ name: 'Crit', issuer: i2, extensions: [new x509.Extension(oid, true, new Uint8Array([5, 0]))] });
    await expectCode(validateCertificatePath({ ...base, leaf: critical.der }), 'ERR_CHAIN_INVALID');
    await expect(validateCertificatePath({ ...base, leaf: critical.der, allowedCriticalExtensions: [oid] })).resolves.toBeDefined();
    const plain = await makeCert({ name: 'Plain', issuer: i2, extensions: [new x509.Extension(oid, false, new Uint8Array([5, 0]))] });
    await expect(validateCertificatePath({ ...base, leaf: plain.der })).resolves.toBeDefined();
  });

  it('requires issuers to be CAs with keyCertSign', async () => {
    const notCa = await makeCert({ name: 'NotCA', issuer: root, ca: false });
    const l = await makeCert({ name: 'L', issuer: notCa });
    await expectCode(validateCertificatePath({ leaf: l.der, intermediates: [notCa.der], trustedRoots: [root.der], at: AT }), 'ERR_CHAIN_INVALID');
    const noSign = await makeCert({ name: 'NoSign', issuer: root, ca: true, keyUsage: x509.KeyUsageFlags.digitalSignature });
    const l2 = await makeCert({ name: 'L2', issuer: noSign });
    await expectCode(validateCertificatePath({ leaf: l2.der, intermediates: [noSign.der], trustedRoots: [root.der], at: AT }), 'ERR_CHAIN_INVALID');
  });

  it('checks the leaf profile: no CA leaf unless allowed; the key type', async () => {
    const caLeaf = await makeCert({ name: 'CaLeaf', issuer: i2, ca: true, pathLength: 0 });
    await expectCode(validateCertificatePath({ ...base, leaf: caLeaf.der }), 'ERR_CHAIN_INVALID');
    await expect(validateCertificatePath({ ...base, leaf: caLeaf.der, leafProfile: { allowCA: true } })).resolves.toBeDefined();
    await expectCode(validateCertificatePath({ ...base, leafProfile: { publicKey: 'ec-p384' } }), 'ERR_CHAIN_INVALID');
    await expect(validateCertificatePath({ ...base, leafProfile: { publicKey: 'ec-p256' } })).resolves.toBeDefined();
  });

  it('checks validity of every certificate at the injected time, either side', async () => {
    await expectCode(validateCertificatePath({ ...base, at: new Date('2023-12-31T23:59:59Z') }), 'ERR_NOT_YET_VALID');
    await expectCode(validateCertificatePath({ ...base, at: new Date('2030-01-01T00:00:01Z') }), 'ERR_EXPIRED');
    const shortLeaf = await makeCert({ name: 'Short', issuer: i2, notAfter: new Date('2025-01-01T00:00:00Z') });
    await expectCode(validateCertificatePath({ ...base, leaf: shortLeaf.der }), 'ERR_EXPIRED');
    const oldRoot = await makeCert({ name: 'Old Root', ca: true, notAfter: new Date('2025-01-01T00:00:00Z') });
    const l = await makeCert({ name: 'L', issuer: oldRoot });
    await expectCode(validateCertificatePath({ leaf: l.der, trustedRoots: [oldRoot.der], at: AT }), 'ERR_EXPIRED');
  });

  it('needs an explicit valid date', async () => {
    await expectCode(validateCertificatePath({ ...base, at: new Date('nope') }), 'ERR_USAGE');
    await expectCode(validateCertificatePath({ ...base, at: undefined as unknown as Date }), 'ERR_USAGE');
  });

  it('refuses SHA-1 and RSA-PSS with a salt shorter than its hash', async () => {
    const rsa1 = (await crypto.subtle.generateKey(
      { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-1', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]) },
      true,
      ['sign', 'verify'],
    )) as CryptoKeyPair;
    const sha1Root = await makeCert({ name: 'SHA1 Root', ca: true, keys: rsa1, signingAlgorithm: { name: 'RSASSA-PKCS1-v1_5' } });
    const sha1Leaf = await makeCert({ name: 'SHA1 Leaf', issuer: sha1Root, signingAlgorithm: { name: 'RSASSA-PKCS1-v1_5' } });
    await expectCode(validateCertificatePath({ leaf: sha1Leaf.der, trustedRoots: [sha1Root.der], at: AT }), 'ERR_CHAIN_INVALID');

    const pss = (await crypto.subtle.generateKey(
      { name: 'RSA-PSS', hash: 'SHA-384', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]) },
      true,
      ['sign', 'verify'],
    )) as CryptoKeyPair;
    const pssRoot = await makeCert({ name: 'PSS Root', ca: true, keys: pss, signingAlgorithm: { name: 'RSA-PSS', saltLength: 48 } as RsaPssParams });
    const good = await makeCert({ name: 'PSS Leaf', issuer: pssRoot, signingAlgorithm: { name: 'RSA-PSS', saltLength: 48 } as RsaPssParams });
    await expect(validateCertificatePath({ leaf: good.der, trustedRoots: [pssRoot.der], at: AT })).resolves.toBeDefined();
    const shortSalt = await makeCert({ name: 'PSS Salt', issuer: pssRoot, signingAlgorithm: { name: 'RSA-PSS', saltLength: 32 } as RsaPssParams });
    await expectCode(validateCertificatePath({ leaf: shortSalt.der, trustedRoots: [pssRoot.der], at: AT }), 'ERR_CHAIN_INVALID');
  });

  describe('CRLs never fail open', () => {
    const crl = async (issuer: Node, opts: { revoked?: Node[]; thisUpdate?: Date; nextUpdate?: Date | null; signingKey?: CryptoKey; extensions?: x509.Extension[] } = {}) =>
      new Uint8Array(
        (
          await x509.X509CrlGenerator.create({
            issuer: issuer.name,
            thisUpdate: opts.thisUpdate ?? new Date('2025-05-01T00:00:00Z'),
            ...(opts.nextUpdate === null ? {} : { nextUpdate: opts.nextUpdate ?? new Date('2025-07-01T00:00:00Z') }),
            signingAlgorithm: EC_SIGN,
            signingKey: opts.signingKey ?? issuer.keys.privateKey,
            // A reason code keeps crlEntryExtensions non-empty (@peculiar/x509 writes an empty SEQUENCE otherwise, which RFC 5280 forbids).
            entries: (opts.revoked ?? []).map((n) => ({
              serialNumber: n.cert.serialNumber,
              revocationDate: new Date('2025-04-01T00:00:00Z'),
              reason: x509.X509CrlReason.keyCompromise,
            })),
            extensions: opts.extensions,
          })
        ).rawData,
      );

    it('accepts current CRLs for every level, and ignores a CRL from an unrelated issuer', async () => {
      const other = await makeCert({ name: 'Unrelated', ca: true });
      const crls = [await crl(root), await crl(i1), await crl(i2), await crl(other)];
      await expect(validateCertificatePath({ ...base, crls })).resolves.toBeDefined();
    });

    it('finds a revoked leaf or intermediate', async () => {
      await expectCode(validateCertificatePath({ ...base, crls: [await crl(root), await crl(i1), await crl(i2, { revoked: [leaf] })] }), 'ERR_REVOKED');
      await expectCode(validateCertificatePath({ ...base, crls: [await crl(root, { revoked: [i1] }), await crl(i1), await crl(i2)] }), 'ERR_REVOKED');
    });

    it('refuses stale, future, unsigned-by-issuer, nextUpdate-less and critical-extension CRLs', async () => {
      const ok = [await crl(root), await crl(i1)];
      await expectCode(validateCertificatePath({ ...base, crls: [...ok, await crl(i2, { nextUpdate: new Date('2025-05-31T00:00:00Z') })] }), 'ERR_EXPIRED');
      await expectCode(validateCertificatePath({ ...base, crls: [...ok, await crl(i2, { thisUpdate: new Date('2025-06-02T00:00:00Z') })] }), 'ERR_NOT_YET_VALID');
      await expectCode(validateCertificatePath({ ...base, crls: [...ok, await crl(i2, { signingKey: i1.keys.privateKey })] }), 'ERR_CHAIN_INVALID');
      await expectCode(validateCertificatePath({ ...base, crls: [...ok, await crl(i2, { nextUpdate: null })] }), 'ERR_MALFORMED');
      const idp = new x509.Extension('2.5.29.28', true, new Uint8Array([0x30, 0x03, 0x81, 0x01, 0xff]));
      await expectCode(validateCertificatePath({ ...base, crls: [...ok, await crl(i2, { extensions: [idp] })] }), 'ERR_CHAIN_INVALID');
    });

    it('once CRLs are given, every certificate below the root needs one', async () => {
      await expectCode(validateCertificatePath({ ...base, crls: [await crl(root), await crl(i1)] }), 'ERR_CHAIN_INVALID');
      await expectCode(validateCertificatePath({ ...base, crls: [] }), 'ERR_CHAIN_INVALID');
    });
  });
});

describe('validateCertificatePath: real chains from test/vectors', () => {
  const amd = (product: 'milan' | 'genoa') => {
    const [ask, ark] = parseCertificates(text(`sev-snp/${product}/ask_ark.pem`));
    return { ask, ark, vcek: parseCertificate(bytes(`sev-snp/${product}/vcek.der`)) };
  };
  const NOW = new Date();

  it('validates AMD Milan and Genoa VCEK -> ASK -> ARK (RSA-PSS SHA-384, VCEK serial 0)', async () => {
    for (const product of ['milan', 'genoa'] as const) {
      const { ask, ark, vcek } = amd(product);
      expect(vcek.serialNumberHex).toBe('00');
      const result = await validateCertificatePath({ leaf: vcek, intermediates: [ask], trustedRoots: [ark], at: NOW, maxIntermediates: 1, leafProfile: { publicKey: 'ec-p384' } });
      expect(result.root.subject).toContain(`CN=ARK-${product === 'milan' ? 'Milan' : 'Genoa'}`);
      expect(ask.basicConstraints).toEqual({ ca: true, pathLength: 0 });
    }
  });

  it('refuses swapped AMD chains and roots', async () => {
    const milan = amd('milan');
    const genoa = amd('genoa');
    await expectCode(validateCertificatePath({ leaf: milan.vcek, intermediates: [genoa.ask], trustedRoots: [genoa.ark], at: NOW }), 'ERR_CHAIN_INVALID');
    await expectCode(validateCertificatePath({ leaf: milan.vcek, intermediates: [milan.ask], trustedRoots: [genoa.ark], at: NOW }), 'ERR_UNTRUSTED_ROOT');
    await expectCode(validateCertificatePath({ leaf: genoa.vcek, intermediates: [milan.ask], trustedRoots: [milan.ark, genoa.ark], at: NOW }), 'ERR_CHAIN_INVALID');
    // The ASK alone, rooted at the ARK, is a CA: refused as a leaf.
    await expectCode(validateCertificatePath({ leaf: milan.ask, trustedRoots: [milan.ark], at: NOW }), 'ERR_CHAIN_INVALID');
  });

  it('checks the Milan VCEK validity window (2022-09-24 to 2029-09-24)', async () => {
    const { ask, ark, vcek } = amd('milan');
    const opts = { leaf: vcek, intermediates: [ask], trustedRoots: [ark] };
    await expectCode(validateCertificatePath({ ...opts, at: new Date('2022-09-23T00:00:00Z') }), 'ERR_NOT_YET_VALID');
    await expectCode(validateCertificatePath({ ...opts, at: new Date('2029-09-25T00:00:00Z') }), 'ERR_EXPIRED');
    await expect(validateCertificatePath({ ...opts, at: new Date('2029-09-24T00:00:00Z') })).resolves.toBeDefined();
  });

  it('validates both NVIDIA H100 five-certificate chains to the pinned device root', async () => {
    const root = parseCertificate(text('nvidia/nvidia_device_root.pem'));
    for (const capture of ['h100-a', 'h100-b']) {
      const chain = parseCertificates(text(`nvidia/${capture}/cert_chain.pem`));
      expect(chain).toHaveLength(5);
      // The full chain (root included) may be passed as intermediates: the root copy is dropped.
      const result = await validateCertificatePath({ leaf: chain[0], intermediates: chain.slice(1), trustedRoots: [root], at: NOW });
      expect(result.path).toHaveLength(5);
    }
  });

  it('validates the Intel TCB-signing and PCK Platform CA chains with Intel CRLs at 2023-07-01', async () => {
    const root = parseCertificate(text('tdx/intel_sgx_root_ca.pem'));
    const at = new Date('2023-07-01T00:00:00Z');
    const rootCrl = bytes('tdx/spr-e4/root_crl.der');
    const tcbChain: ParsedCertificate[] = parseCertificates(text('tdx/spr-e4/tcb_info_issuer_chain.pem'));
    await expect(validateCertificatePath({ leaf: tcbChain[0], intermediates: tcbChain.slice(1), trustedRoots: [root], at, crls: [rootCrl] })).resolves.toBeDefined();
    const pckChain = parseCertificates(text('tdx/spr-e4/pck_crl_issuer_chain.pem'));
    // The Platform CA as a leaf (it is a CA, pathLen 0 under the root's pathLen 1).
    await expect(
      validateCertificatePath({ leaf: pckChain[0], trustedRoots: [root], at, crls: [rootCrl], leafProfile: { allowCA: true } }),
    ).resolves.toBeDefined();
    // The root CRL is valid from 2023-04-03 to 2024-04-02.
    await expectCode(validateCertificatePath({ leaf: tcbChain[0], trustedRoots: [root], at: new Date('2024-05-01T00:00:00Z'), crls: [rootCrl] }), 'ERR_EXPIRED');
    // The PCK CRL is from the Platform CA: it says nothing about the TCB-signing cert, so that cert has no CRL.
    await expectCode(validateCertificatePath({ leaf: tcbChain[0], trustedRoots: [root], at, crls: [bytes('tdx/spr-e4/pck_crl.der')] }), 'ERR_CHAIN_INVALID');
  });
});
