/**
 * `obscura verify --endpoint URL`: fetch the attestation bundle through the edge and verify it with the
 * SDK's checks against your client policy (vendor root, the service's measurement, report_data binding,
 * protocol version, age, and that the manifest history extends what this client saw before), then show
 * what was verified: the same values the chat page shows, to compare.
 */
import { parseArgs } from 'node:util';
import type { CliIO, Command } from '../command.ts';
import { EXIT } from '../exit-codes.ts';
import { colonHex, duration, ENDPOINT_OPTIONS, ENDPOINT_USAGE, grouped, openEndpoint, verifiedFacts } from './endpoint/client.ts';

const usage = `obscura verify --endpoint URL [--nonce] [--policy FILE] [--json]

Fetches the attestation service's bundle through the edge and verifies it in this process against your
client policy: the evidence chains to your vendor root, shows a launch measurement your policy allows,
binds the bundle (report_data = SHA-512 of the attested core), is recent enough, and the manifest
history extends the one this client recorded before (STATE-DIR/client/manifest-log.json). Prints what
was verified, as the chat page at the edge's / shows it.

  --nonce           ask for fresh evidence made for a nonce of ours (liveness; bypasses the edge's cache)
${ENDPOINT_USAGE}

Exit codes: 0 verified; 3 signature/chain, 4 expired, 5 measurement, binding or manifest history
mismatch, 6 protocol, 7 unreachable; 1 usage.`;

export const verifyCommand: Command = {
  name: 'verify',
  summary: "verify an endpoint's attestation against your client policy and show what was verified",
  usage,
  async run(argv: string[], io: CliIO): Promise<number> {
    const { values } = parseArgs({ args: argv, options: { ...ENDPOINT_OPTIONS, nonce: { type: 'boolean' }, help: { type: 'boolean' } }, strict: true });
    if (values.help) {
      io.out(usage);
      return EXIT.OK;
    }
    const client = openEndpoint(values, io);
    try {
      const before = await client.seenBefore();
      io.err(`[obscura] fetching the attestation bundle of ${client.endpoint}${values.nonce ? ' (fresh evidence for our nonce)' : ''}`);
      const v = await client.obscuraFetch.session.verified({ fresh: values.nonce === true });
      const now = Date.now();
      const facts = verifiedFacts(v, now);
      const m = facts.manifest;
      const continuity = !m
        ? 'no manifest yet'
        : !before
          ? 'first seen: recorded'
          : before.seq === m.entries - 1 && before.head === m.head
            ? 'the same head as recorded before'
            : `extends entry ${before.seq} recorded before`;
      if (values.json) {
        io.out(
          JSON.stringify({
            ok: true,
            endpoint: client.endpoint,
            policy: client.policyPath,
            verifiedAt: now,
            ...facts,
            manifestLog: { path: client.manifestLogPath, before: before ?? null, continuity },
            warnings: client.warnings,
          }),
        );
        return EXIT.OK;
      }
      const t = facts.report.reportedTcb;
      // Bundles are verified as SEV-SNP evidence, which always states its TCB.
      const tcb = t ? `TCB bootloader ${t.bootloader} TEE ${t.tee} SNP ${t.snp} microcode ${t.microcode}` : 'TCB not stated';
      const rows: [string, string][] = [
        ['platform', `${facts.platform === 'sev-snp' ? 'AMD SEV-SNP' : facts.platform}, report v${facts.report.version}, debug ${facts.report.debug ? 'ON' : 'off'}, ${tcb}`],
        ['service measurement', `${grouped(facts.measurement)}  (allowed by the policy)`],
        ['vendor root', `SHA-256 ${colonHex(facts.vendorRoot.fingerprintSha256)}  (${facts.vendorRoot.subject})`],
        ['binding', `report_data = SHA-512(attested core), protocol v${facts.protocolVersion}`],
        ['manifest digest', m ? `sha256: ${grouped(m.digest.slice('sha256:'.length))}` : 'none yet: no worker can be admitted'],
        ['manifest history', m ? `${m.entries} ${m.entries === 1 ? 'entry' : 'entries'}, head ${grouped(m.head)}; ${continuity} in ${client.manifestLogPath}` : '–'],
        ['bundle', `issued ${duration(facts.bundle.ageMs)} ago, expires in ${duration(facts.bundle.expiresAt - now)}; ${facts.bundle.nonce ? 'fresh evidence for our nonce' : "the edge's shared bundle"}; the policy accepts up to ${duration(client.policy.maxBundleAgeMs)}`],
        ['sealed to', facts.hpke.chosen],
      ];
      if (m) rows.push(['admits', `models ${m.models.join(', ') || '–'}; AI code ${m.aiCode.join(', ')}`]);
      const width = Math.max(...rows.map(([k]) => k.length));
      io.out(`verified ${client.endpoint} against ${client.policyPath}`);
      for (const [k, val] of rows) io.out(`  ${k.padEnd(width)}  ${val}`);
      return EXIT.OK;
    } finally {
      await client.close();
    }
  },
};
