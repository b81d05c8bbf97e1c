/**
 * The attestation service process: `node --import tsx attestation-service/main.ts --port 8443 ...`.
 * Started by `obscura up` for the local deployment; in production, inside its own confidential VM.
 */
import { readFileSync } from 'node:fs';
import { sha256, toHex } from '../shared/bytes.ts';
import { createCertificateAuthority, certificateSpki } from '../shared/pki/issue-certificate.ts';
import { generateHpkeKeyPair } from '../shared/protocol/hpke-suites.ts';
import { imageMeasurement } from '../worker-os/image-digest.ts';
import { createLogger, flag, onShutdown } from '../worker-os/process-lifecycle.ts';
import { simulatedSnpProvider } from '../worker-os/tee/simulated-snp.ts';
import { BundleIssuer } from './bundle-issuer.ts';
import { ManifestStore } from './manifest-store.ts';
import { SecretStore } from './secret-store.ts';
import { createServiceServer } from './server.ts';
import { WorkerRegistry } from './worker-registry.ts';

const MESH_CA_LIFETIME_MS = 7 * 24 * 3600_000;

const argv = process.argv.slice(2);
const log = createLogger('attestation-service');
const host = flag(argv, 'host', 'OBSCURA_AS_HOST', '127.0.0.1');
const port = Number(flag(argv, 'port', 'OBSCURA_AS_PORT', '8443'));
const tls = { certPem: readFileSync(flag(argv, 'tls-cert', 'OBSCURA_AS_TLS_CERT'), 'utf8'), keyPem: readFileSync(flag(argv, 'tls-key', 'OBSCURA_AS_TLS_KEY'), 'utf8') };
const teeDir = flag(argv, 'tee-dir', 'OBSCURA_TEE_DIR');

const now = () => Date.now();
const measurement = imageMeasurement('attestation-service', {});
const tee = await simulatedSnpProvider({ hardwareDir: teeDir, measurement });
const manifests = new ManifestStore(now);
const hpke = [await generateHpkeKeyPair()];
const meshCa = await createCertificateAuthority({ commonName: 'Obscura mesh CA', notBefore: new Date(now() - 60_000), notAfter: new Date(now() + MESH_CA_LIFETIME_MS) });
const issuer = new BundleIssuer({
  tee,
  manifests,
  hpke,
  tlsKeySha256: await sha256(certificateSpki(tls.certPem)),
  meshCaSha256: await sha256(meshCa.certificateDer),
  now,
});
const workers = new WorkerRegistry(manifests, meshCa, now);
const server = createServiceServer(
  { issuer, manifests, secrets: new SecretStore(now), workers, hpke, log, now, meshCaPem: meshCa.certificatePem },
  tls,
);
server.listen(port, host, () => log({ event: 'listening', url: `https://${host}:${port}`, measurement: toHex(measurement) }));
onShutdown(async () => void (await new Promise((r) => server.close(r))), log);
