/**
 * Start the local client proxy from a policy file: used by `obscura proxy` and by `obscura up`.
 * The edge's TLS is verified with the system CAs, plus `caPem` when the edge uses a private CA.
 */
import { readFileSync } from 'node:fs';
import type { Server } from 'node:http';
import { join } from 'node:path';
import { Agent, fetch as undiciFetch } from 'undici';
import { rootCertificates } from 'node:tls';
import { FileManifestLogStore } from '../node/file-manifest-log.ts';
import { createObscuraFetch } from '../sdk/obscura-fetch.ts';
import { parseClientPolicy } from '../sdk/policy.ts';
import { createClientProxy } from './server.ts';

export interface StartedClientProxy {
  server: Server;
  url: string;
  close(): Promise<void>;
}

export async function startClientProxy(input: {
  endpoint: string;
  policyPath: string;
  port: number;
  stateDir: string; // the manifest log lives here
  caPem?: string;
  apiKey?: string; // the edge's API key (Authorization: Bearer), sent on every call to the edge
  onWarning?: (message: string) => void;
  log?: (event: Record<string, unknown>) => void;
}): Promise<StartedClientProxy> {
  const policy = parseClientPolicy(JSON.parse(readFileSync(input.policyPath, 'utf8')));
  const agent = new Agent({ connect: input.caPem ? { ca: [...rootCertificates, input.caPem] } : {} });
  const obscuraFetch = createObscuraFetch({
    endpoint: input.endpoint,
    policy,
    fetch: ((url: string, init?: RequestInit) => undiciFetch(url, { ...(init as object), dispatcher: agent })) as unknown as typeof fetch,
    manifestLog: new FileManifestLogStore(join(input.stateDir, 'client', 'manifest-log.json')),
    headers: input.apiKey ? { authorization: `Bearer ${input.apiKey}` } : undefined,
    onWarning: input.onWarning,
  });
  const server = createClientProxy({ obscuraFetch, port: input.port, log: input.log });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(input.port, '127.0.0.1', () => resolve());
  });
  return {
    server,
    url: `http://127.0.0.1:${input.port}/v1`,
    async close() {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
      await agent.close();
    },
  };
}
