/**
 * What the user-side commands (`obscura verify`, `obscura secret`, `obscura chat`) share: the SDK
 * against an Obscura endpoint (the edge), with the same defaults as `obscura proxy` (the client policy,
 * the local CA and the manifest log under the state directory), and what a verified bundle shows.
 */
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { rootCertificates } from 'node:tls';
import { Agent, fetch as undiciFetch } from 'undici';
import { toHex } from '../../../../shared/bytes.ts';
import { isErrorCode, ObscuraError } from '../../../../shared/errors.ts';
import { chooseHpkeSuite } from '../../../../shared/protocol/hpke-suites.ts';
import type { VerifiedBundle } from '../../../../shared/protocol/verify-bundle.ts';
import { FileManifestLogStore } from '../../../node/file-manifest-log.ts';
import type { SeenManifestHead } from '../../../sdk/manifest-log.ts';
import { createObscuraFetch, type ObscuraFetch } from '../../../sdk/obscura-fetch.ts';
import { parseClientPolicy, type ClientPolicy } from '../../../sdk/policy.ts';

export const ENDPOINT_OPTIONS = {
  endpoint: { type: 'string' },
  policy: { type: 'string' },
  ca: { type: 'string' },
  'state-dir': { type: 'string' },
  'api-key': { type: 'string' },
  json: { type: 'boolean' },
} as const;

export const ENDPOINT_USAGE = `  --endpoint URL    the Obscura edge, e.g. https://obscura.example.com   OBSCURA_ENDPOINT
                    (local: https://127.0.0.1:8787)
  --policy FILE     your client policy: the vendor roots and the service measurements you trust
                    (default STATE-DIR/client-policy.json, written by obscura up)
  --ca FILE         extra CA for the endpoint's TLS (default STATE-DIR/tls/ca.pem when it exists)
  --api-key KEY     the edge's API key, sent as Authorization: Bearer       OBSCURA_API_KEY
  --state-dir DIR   where the manifest log is kept (STATE-DIR/client/manifest-log.json, shared with
                    obscura proxy)                                          OBSCURA_STATE_DIR (.obscura)
  --json            one JSON object on stdout`;

export interface EndpointClient {
  endpoint: string;
  policy: ClientPolicy;
  policyPath: string;
  manifestLogPath: string;
  obscuraFetch: ObscuraFetch;
  /** What the manifest log held before this run (undefined: this client never saw the service). */
  seenBefore(): Promise<SeenManifestHead | undefined>;
  warnings: string[];
  close(): Promise<void>;
}

export function openEndpoint(values: Record<string, unknown>, io: { err(line: string): void }): EndpointClient {
  const str = (name: string) => (typeof values[name] === 'string' ? (values[name] as string) : undefined);
  const endpoint = (str('endpoint') ?? process.env.OBSCURA_ENDPOINT)?.replace(/\/+$/, '');
  if (!endpoint) throw new ObscuraError('ERR_USAGE', 'name the Obscura endpoint with --endpoint URL (or OBSCURA_ENDPOINT)');
  try {
    if (!/^https?:$/.test(new URL(endpoint).protocol)) throw new Error();
  } catch {
    throw new ObscuraError('ERR_USAGE', `--endpoint ${endpoint} is not an http(s) URL`);
  }
  const stateDir = resolve(str('state-dir') ?? process.env.OBSCURA_STATE_DIR ?? '.obscura');
  const policyPath = resolve(str('policy') ?? join(stateDir, 'client-policy.json'));
  let policyText: string;
  try {
    policyText = readFileSync(policyPath, 'utf8');
  } catch {
    throw new ObscuraError('ERR_USAGE', `cannot read the client policy ${policyPath}; pass --policy FILE`);
  }
  let policyDoc: unknown;
  try {
    policyDoc = JSON.parse(policyText);
  } catch {
    throw new ObscuraError('ERR_MALFORMED', `the client policy ${policyPath} is not JSON`);
  }
  const policy = parseClientPolicy(policyDoc);
  let caPem: string | undefined;
  const caPath = str('ca');
  try {
    caPem = readFileSync(caPath ?? join(stateDir, 'tls', 'ca.pem'), 'utf8');
  } catch {
    if (caPath) throw new ObscuraError('ERR_USAGE', `cannot read --ca ${caPath}`);
  }
  const apiKey = str('api-key') ?? process.env.OBSCURA_API_KEY;
  const agent = new Agent({ connect: caPem ? { ca: [...rootCertificates, caPem] } : {} });
  const manifestLogPath = join(stateDir, 'client', 'manifest-log.json');
  const log = new FileManifestLogStore(manifestLogPath);
  let before: Promise<SeenManifestHead | undefined> | undefined;
  const warnings: string[] = [];
  const obscuraFetch = createObscuraFetch({
    endpoint,
    policy,
    fetch: ((url: string, init?: RequestInit) => undiciFetch(url, { ...(init as object), dispatcher: agent })) as unknown as typeof fetch,
    manifestLog: {
      // Remember what the log held before this run's first verification recorded a new head.
      load: async () => {
        const seen = await log.load();
        before ??= Promise.resolve(seen);
        return seen;
      },
      save: (seen) => log.save(seen),
    },
    headers: apiKey ? { authorization: `Bearer ${apiKey}` } : undefined,
    onWarning: (m) => {
      warnings.push(m);
      io.err(`[obscura] WARNING: ${m}`);
    },
  });
  return {
    endpoint,
    policy,
    policyPath,
    manifestLogPath,
    obscuraFetch,
    seenBefore: () => (before ??= log.load()),
    warnings,
    close: () => agent.close(),
  };
}

/** An OpenAI error body from the SDK (or the AI code) as an ObscuraError, so the exit status says what failed. */
export async function responseError(res: Response, what: string): Promise<ObscuraError> {
  const body = (await res.json().catch(() => undefined)) as { error?: { code?: unknown; message?: unknown } } | undefined;
  const code = body?.error?.code;
  const message = typeof body?.error?.message === 'string' ? body.error.message : `HTTP ${res.status}`;
  if (isErrorCode(code)) return new ObscuraError(code, `${what}: ${message}`);
  return new ObscuraError(res.status >= 400 && res.status < 500 ? 'ERR_USAGE' : 'ERR_UPSTREAM', `${what}: ${message} (HTTP ${res.status})`);
}

/** Hex in groups of 8, as the chat page shows it, so the two can be compared by eye. */
export function grouped(hex: string): string {
  return hex.match(/.{1,8}/g)?.join(' ') ?? hex;
}

/** As `openssl x509 -noout -fingerprint -sha256` shows it. */
export function colonHex(hex: string): string {
  return hex.toUpperCase().match(/../g)?.join(':') ?? hex;
}

export function duration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 90) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 90) return s % 60 ? `${m} min ${s % 60} s` : `${m} min`;
  return m % 60 ? `${Math.floor(m / 60)} h ${m % 60} min` : `${Math.floor(m / 60)} h`;
}

/** What a verified bundle shows, as JSON (hex strings, ms times). */
export function verifiedFacts(v: VerifiedBundle, now: number) {
  const chain = v.bundle.chain;
  const last = chain[chain.length - 1];
  return {
    platform: v.facts.platform,
    report: { version: v.facts.version, debug: v.facts.debug, reportedTcb: v.facts.reportedTcb },
    measurement: toHex(v.facts.measurement),
    vendorRoot: { subject: v.facts.root.subject, fingerprintSha256: v.facts.root.fingerprintSha256 },
    protocolVersion: v.core.v,
    bundle: { issuedAt: v.core.issuedAt, expiresAt: v.core.expiresAt, ageMs: now - v.core.issuedAt, nonce: v.core.nonce !== undefined },
    manifest: last
      ? {
          digest: `sha256:${toHex(last.manifestSha256)}`,
          entries: chain.length,
          head: toHex(v.manifestHead),
          setAt: last.setAt,
          authorizedBy: last.authorizedBy,
          models: v.manifest?.models.map((m) => m.name) ?? [],
          aiCode: v.manifest?.aiCode.map((a) => a.name) ?? [],
        }
      : null,
    hpke: { offered: v.core.hpke.map((h) => h.suite), chosen: chooseHpkeSuite(v.core.hpke.map((h) => h.suite)) },
  };
}
