/**
 * `obscura proxy --endpoint URL`: the OpenAI-compatible local proxy on 127.0.0.1, so any OpenAI client
 * works unchanged while every request is sealed on this machine.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { ObscuraError } from '../../../shared/errors.ts';
import { startClientProxy } from '../../proxy/start.ts';
import type { Command } from '../command.ts';
import { EXIT } from '../exit-codes.ts';

const usage = `obscura proxy --endpoint URL [--port 8080] [--policy FILE] [--ca FILE] [--state-dir DIR]

Serves the OpenAI API on http://127.0.0.1:PORT/v1 and seals every request to the Obscura endpoint.
  --endpoint URL   the Obscura edge, e.g. https://obscura.example.com (local: https://127.0.0.1:8787)
  --port N         local port (default 8080); binds 127.0.0.1 only
  --policy FILE    the client policy: roots and the attestation service measurement you trust
                   (default: STATE-DIR/client-policy.json, written by obscura up)
  --ca FILE        extra CA for the endpoint's TLS (default: STATE-DIR/tls/ca.pem when it exists)
  --api-key KEY    the edge's API key (or OBSCURA_API_KEY), sent as Authorization: Bearer
  --state-dir DIR  where the manifest log is kept (default $OBSCURA_STATE_DIR or .obscura)`;

export const proxyCommand: Command = {
  name: 'proxy',
  summary: 'run the OpenAI-compatible local proxy that seals requests to an Obscura endpoint',
  usage,
  async run(argv, io) {
    const { values } = parseArgs({
      args: argv,
      options: { 'api-key': { type: 'string' }, endpoint: { type: 'string' }, port: { type: 'string' }, policy: { type: 'string' }, ca: { type: 'string' }, 'state-dir': { type: 'string' } },
      strict: true,
    });
    if (!values.endpoint) throw new ObscuraError('ERR_USAGE', `--endpoint is required\n\n${usage}`);
    const stateDir = resolve(values['state-dir'] ?? process.env.OBSCURA_STATE_DIR ?? '.obscura');
    const policyPath = resolve(values.policy ?? `${stateDir}/client-policy.json`);
    let caPem: string | undefined;
    try {
      caPem = readFileSync(values.ca ?? `${stateDir}/tls/ca.pem`, 'utf8');
    } catch {
      if (values.ca) throw new ObscuraError('ERR_USAGE', `cannot read --ca ${values.ca}`);
    }
    try {
      readFileSync(policyPath);
    } catch {
      throw new ObscuraError('ERR_USAGE', `cannot read the client policy ${policyPath}; pass --policy FILE`);
    }
    const proxy = await startClientProxy({
      endpoint: values.endpoint,
      policyPath,
      port: Number(values.port ?? 8080),
      stateDir,
      caPem,
      apiKey: values['api-key'] ?? process.env.OBSCURA_API_KEY,
      onWarning: (m) => io.err(`[obscura] WARNING: ${m}`),
    });
    io.out(`[obscura] ready: ${proxy.url} (sealing to ${values.endpoint})`);
    await new Promise<void>((r) => {
      process.once('SIGINT', r);
      process.once('SIGTERM', r);
    });
    await proxy.close();
    return EXIT.OK;
  },
};
