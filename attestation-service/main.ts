/**
 * The attestation service process: `node --import tsx attestation-service/main.ts --port 8443
 * --state-dir DIR ...`. Started by `obscura up` for the local deployment; in production, inside its own
 * confidential VM. Its state is sealed under DIR; a state file it cannot open stops it (exit status
 * 3) with a `state-refused` log line saying why, and the file is left as it is.
 *
 * `--handoff-from URL --handoff-roots PEM-FILE [--handoff-ca PEM-FILE]`: a fresh service (empty state
 * directory) on new hardware takes its state from the attested service at URL (state-handoff.ts), whose
 * evidence must chain to a root in PEM-FILE and whose TLS certificate to the CA; `--public-url` is where
 * this one serves (default https://HOST:PORT), named by the old one to anyone still calling it. A
 * handoff that does not go through stops it (exit status 4, a `handoff-failed` line); nothing is kept.
 */
import { readFileSync } from 'node:fs';
import { toHex } from '../shared/bytes.ts';
import { imageMeasurement } from '../worker-os/image-digest.ts';
import { createLogger, flag, onShutdown } from '../worker-os/process-lifecycle.ts';
import { simulatedSnpProvider } from '../worker-os/tee/simulated-snp.ts';
import { ObscuraError } from '../shared/errors.ts';
import { SealedStateError } from './sealed-state.ts';
import { createServiceServer } from './server.ts';
import { openAttestationService } from './service.ts';
import { receiveStateHandoff } from './state-handoff.ts';

const EXIT_STATE_REFUSED = 3;
const EXIT_HANDOFF_FAILED = 4;

const argv = process.argv.slice(2);
const log = createLogger('attestation-service');
const host = flag(argv, 'host', 'OBSCURA_AS_HOST', '127.0.0.1');
const port = Number(flag(argv, 'port', 'OBSCURA_AS_PORT', '8443'));
const tls = { certPem: readFileSync(flag(argv, 'tls-cert', 'OBSCURA_AS_TLS_CERT'), 'utf8'), keyPem: readFileSync(flag(argv, 'tls-key', 'OBSCURA_AS_TLS_KEY'), 'utf8') };
const teeDir = flag(argv, 'tee-dir', 'OBSCURA_TEE_DIR');
const stateDir = flag(argv, 'state-dir', 'OBSCURA_AS_STATE_DIR');
const handoffFrom = flag(argv, 'handoff-from', 'OBSCURA_AS_HANDOFF_FROM', '');
const publicUrl = flag(argv, 'public-url', 'OBSCURA_AS_PUBLIC_URL', `https://${host}:${port}`);
const handoff = handoffFrom
  ? {
      from: handoffFrom,
      trustedRootsPem: [readFileSync(flag(argv, 'handoff-roots', 'OBSCURA_AS_HANDOFF_ROOTS'), 'utf8')],
      tlsCaPem: ((path) => (path ? readFileSync(path, 'utf8') : undefined))(flag(argv, 'handoff-ca', 'OBSCURA_AS_HANDOFF_CA', '')),
    }
  : undefined;

const measurement = imageMeasurement('attestation-service', {});
const tee = await simulatedSnpProvider({ hardwareDir: teeDir, measurement });
let service;
try {
  const adopt = handoff && (() => receiveStateHandoff({ ...handoff, tee, measurement, tlsCertPem: tls.certPem, endpoint: publicUrl, log }));
  service = await openAttestationService({ tee, measurement, stateDir, tlsCertPem: tls.certPem, log, adopt });
} catch (e) {
  if (handoff && e instanceof ObscuraError && !(e instanceof SealedStateError)) {
    log({ event: 'handoff-failed', from: handoff.from, code: e.code, reason: e.message });
    process.stderr.write(`attestation service: the state handoff from ${handoff.from} failed: ${e.message} (${e.code})\n`);
    process.exit(EXIT_HANDOFF_FAILED);
  }
  if (!(e instanceof SealedStateError)) throw e;
  log({ event: 'state-refused', code: e.code, problem: e.problem, path: e.path, reason: e.message, measurement: toHex(measurement) });
  process.stderr.write(`attestation service: refusing to start: ${e.message} (${e.code}); the state was left as it is\n`);
  process.exit(EXIT_STATE_REFUSED);
}
const { ctx } = service;
log({
  event: 'state-opened',
  origin: service.origin,
  manifestEntries: ctx.manifests.chain.length,
  workers: ctx.workers.list().length,
  secrets: ctx.secrets.size,
  hpkeSuites: ctx.hpke.map((k) => k.suite),
});
const server = createServiceServer(ctx, tls);
server.listen(port, host, () => log({ event: 'listening', url: `https://${host}:${port}`, measurement: toHex(measurement) }));
onShutdown(async () => {
  await new Promise((r) => server.close(r));
  server.closeAllConnections();
  await service.state.persist();
  await service.close();
}, log);
