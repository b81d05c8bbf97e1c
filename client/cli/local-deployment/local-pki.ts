/**
 * The local deployment's TLS: one local CA (kept in the state directory, key mode 0600) issuing server
 * certificates for the attestation service, the worker and the edge on 127.0.0.1. Reused across runs.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createCertificateAuthority, generateP256KeyPair, issueLeafCertificate, privateKeyPem, spkiOf } from '../../../shared/pki/issue-certificate.ts';

const CA_LIFETIME_MS = 365 * 24 * 3600_000;
const SERVER_LIFETIME_MS = 90 * 24 * 3600_000;

export interface TlsFiles {
  certPath: string;
  keyPath: string;
}

export interface LocalPki {
  caPath: string;
  caPem: string;
  servers: Record<'attestation-service' | 'worker' | 'edge', TlsFiles>;
}

function writeSecretFile(path: string, content: string): void {
  writeFileSync(path, content, { mode: 0o600 });
  chmodSync(path, 0o600);
}

export async function ensureLocalPki(stateDir: string): Promise<LocalPki> {
  const dir = join(stateDir, 'tls');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const caPath = join(dir, 'ca.pem');
  const names = ['attestation-service', 'worker', 'edge'] as const;
  const servers = Object.fromEntries(names.map((n) => [n, { certPath: join(dir, `${n}.pem`), keyPath: join(dir, `${n}.key`) }])) as LocalPki['servers'];
  const complete = existsSync(caPath) && names.every((n) => existsSync(servers[n].certPath) && existsSync(servers[n].keyPath));
  if (!complete) {
    const now = Date.now();
    const ca = await createCertificateAuthority({ commonName: 'Obscura local deployment CA', notBefore: new Date(now - 60_000), notAfter: new Date(now + CA_LIFETIME_MS) });
    for (const n of names) {
      const keys = await generateP256KeyPair();
      const cert = await issueLeafCertificate({
        ca,
        subjectPublicKeySpki: await spkiOf(keys.publicKey),
        commonName: `obscura-${n}`,
        dnsNames: ['localhost'],
        ipAddresses: ['127.0.0.1'],
        usage: 'server',
        notBefore: new Date(now - 60_000),
        notAfter: new Date(now + SERVER_LIFETIME_MS),
      });
      writeFileSync(servers[n].certPath, cert.certificatePem + ca.certificatePem);
      writeSecretFile(servers[n].keyPath, await privateKeyPem(keys.privateKey));
    }
    writeFileSync(caPath, ca.certificatePem);
  }
  return { caPath, caPem: readFileSync(caPath, 'utf8'), servers };
}
