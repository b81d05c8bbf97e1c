/**
 * The worker agent's HTTPS server: the encryption proxy's endpoint, a health check, and a read-only
 * view of the AI code it runs (metadata only, never content).
 */
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { utf8 } from '../shared/bytes.ts';
import type { AiCodeSupervisor } from './ai-code-supervisor.ts';
import { AgentApi } from './agent-api.ts';
import type { EncryptionProxy } from './encryption-proxy.ts';
import type { SecretCache } from './secret-cache.ts';

function json(res: ServerResponse, status: number, value: unknown): void {
  const bytes = utf8(JSON.stringify(value));
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': bytes.length, 'cache-control': 'no-store' });
  res.end(bytes);
}

export function createAgentServer(input: {
  tls: { certPem: string; keyPem: string };
  proxy: EncryptionProxy;
  secrets: Pick<SecretCache, 'attested'>;
  aiCode: AiCodeSupervisor[];
  measurementHex: string;
  agentApi?: AgentApi; // without it, /agent/v1/ answers 404
}): Server {
  return createServer({ cert: input.tls.certPem, key: input.tls.keyPem }, (req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method === 'POST' && path === '/v1/inference') return void input.proxy.handle(req, res);
    if (req.method === 'GET' && path === '/healthz') {
      const ready = input.secrets.attested && input.aiCode.every((a) => a.state === 'running');
      return json(res, ready ? 200 : 503, { ok: ready, attested: input.secrets.attested, aiCode: input.aiCode.map((a) => ({ name: a.name, state: a.state })) });
    }
    if (input.agentApi && AgentApi.owns(path)) return void input.agentApi.handle(req, res);
    json(res, 404, { error: { code: 'ERR_USAGE', message: `no route ${req.method} ${path}` } });
  });
}
