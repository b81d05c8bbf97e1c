/**
 * `npm run load`: N concurrent streamed chat completions, back to back for D seconds, through the full
 * path (SDK → edge → worker → AI code in gVisor) of a local deployment started as `npm start` starts it
 * (test/e2e/harness.ts). Reports errors (0 expected), streams that did not finish, first-token and
 * stream latencies, throughput, and the RSS of every part at start and end (and the peak).
 *
 *   node --import tsx test/bench/load.ts [--concurrency 200] [--seconds 60] [--tokens 64]
 *        [--tokens-per-second 50] [--via sdk|proxy] [--grace 30] [--json]
 *
 * Exit status 1 when any stream failed or did not finish; the table goes to stdout, step lines to
 * stderr, and with --json one JSON object is the last line of stdout.
 */
import { setMaxListeners } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { RunningSystem } from '../e2e/harness.ts';
import { MODEL, openPaths, PROMPT, sdkStreamBody, SseTokenCounter } from './lib/paths.ts';
import { rssByPart, rssKiB, systemProcesses, type PartRss } from './lib/procs.ts';
import { edgeReloads, startBenchSystem } from './lib/system.ts';
import { num, table } from './lib/report.ts';
import { percentile, round, step } from './lib/stats.ts';

const { values: flags } = parseArgs({
  options: {
    concurrency: { type: 'string', default: '200' },
    seconds: { type: 'string', default: '60' },
    tokens: { type: 'string', default: '64' },
    'tokens-per-second': { type: 'string', default: '50' },
    via: { type: 'string', default: 'sdk' },
    grace: { type: 'string', default: '30' },
    json: { type: 'boolean' },
    help: { type: 'boolean' },
  },
  strict: true,
});
if (flags.help) {
  process.stdout.write(
    'usage: node --import tsx test/bench/load.ts [--concurrency 200] [--seconds 60] [--tokens 64] [--tokens-per-second 50] [--via sdk|proxy] [--grace 30] [--json]\n',
  );
  process.exit(0);
}
const CONCURRENCY = Number(flags.concurrency);
const SECONDS = Number(flags.seconds);
const TOKENS = Number(flags.tokens);
const TPS = Number(flags['tokens-per-second']);
const GRACE_S = Number(flags.grace);
const VIA = flags.via === 'proxy' ? 'proxy' : 'sdk';
for (const [k, v] of Object.entries({ CONCURRENCY, SECONDS, TOKENS, TPS, GRACE_S })) {
  if (!Number.isFinite(v) || v < 0 || (k !== 'TPS' && k !== 'GRACE_S' && v === 0)) {
    process.stderr.write(`bad value for ${k}\n`);
    process.exit(2);
  }
}

const benchDir = mkdtempSync(join(tmpdir(), 'obscura-load-'));
let system: RunningSystem | undefined;
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    step(`${sig}: stopping the system`);
    void (system?.stop() ?? Promise.resolve()).finally(() => process.exit(130));
  });
}

/** One streamed completion through the client proxy with plain HTTP (what any OpenAI client sends). */
async function proxyStreamBody(proxyUrl: string, signal: AbortSignal): Promise<AsyncIterable<Uint8Array>> {
  const res = await fetch(`${proxyUrl}/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: 'Bearer local' },
    body: JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: PROMPT }], max_tokens: TOKENS, stream: true }),
    signal,
  });
  if (res.status !== 200 || !res.body) throw new Error(`client proxy: status ${res.status} ${(await res.text().catch(() => '')).slice(0, 200)}`);
  return res.body as unknown as AsyncIterable<Uint8Array>;
}

const started = performance.now();
let exitCode = 0;
try {
  step(`starting the system (AI code paced at ${TPS || 'unpaced'} tokens/s)…`);
  system = await startBenchSystem(join(benchDir, 'system'), { args: ['--tokens-per-second', String(TPS)] });
  const paths = openPaths(system);
  const proxyUrl = system.proxyUrl;
  const open = (signal: AbortSignal) => (VIA === 'proxy' ? proxyStreamBody(proxyUrl, signal) : sdkStreamBody(paths.full, TOKENS, signal));

  // Warm-up: attestation, secret exchange, connections.
  for await (const _ of await open(new AbortController().signal)) void _;

  const procs = systemProcesses();
  const rssStart = rssByPart(procs);
  const peak = new Map<number, number>();
  const sampleRss = () => {
    for (const p of procs) peak.set(p.pid, Math.max(peak.get(p.pid) ?? 0, rssKiB(p.pid)));
  };
  sampleRss();
  const sampler = setInterval(sampleRss, 1_000);

  step(`load: ${CONCURRENCY} concurrent streams of ${TOKENS} tokens via ${VIA === 'sdk' ? 'the SDK → edge' : 'the client proxy → edge'}, for ${SECONDS} s…`);
  const ac = new AbortController();
  setMaxListeners(0, ac.signal); // one signal for all the streams
  const t0 = performance.now();
  const deadline = t0 + SECONDS * 1000;
  let tokens = 0;
  let tokensInWindow = 0;
  let completed = 0;
  let inFlight = 0;
  const errorCounts = new Map<string, number>();
  const ttft: number[] = [];
  const durations: number[] = [];
  const client = async () => {
    while (performance.now() < deadline && !ac.signal.aborted) {
      const s0 = performance.now();
      const counter = new SseTokenCounter();
      inFlight++;
      try {
        for await (const chunk of await open(ac.signal)) {
          const before = counter.tokens;
          counter.push(chunk);
          const now = performance.now();
          tokens += counter.tokens - before;
          if (now <= deadline) tokensInWindow += counter.tokens - before;
          if (before === 0 && counter.tokens > 0) ttft.push(now - s0);
        }
        if (!counter.done) throw new Error('the stream ended without [DONE]');
        if (counter.tokens !== TOKENS) throw new Error(`the stream had ${counter.tokens} tokens, not ${TOKENS}`);
        completed++;
        durations.push(performance.now() - s0);
      } catch (e) {
        if (!ac.signal.aborted) {
          const msg = String((e as Error)?.message ?? e).slice(0, 200);
          errorCounts.set(msg, (errorCounts.get(msg) ?? 0) + 1);
          await new Promise((r) => setTimeout(r, 100));
        }
      } finally {
        inFlight--;
      }
    }
  };
  const progress = setInterval(() => {
    const s = (performance.now() - t0) / 1000;
    step(`  ${s.toFixed(0)} s: ${completed} streams done, ${inFlight} in flight, ${tokens} tokens, ${[...errorCounts.values()].reduce((a, b) => a + b, 0)} errors`);
  }, 5_000);
  const clients = Promise.all(Array.from({ length: CONCURRENCY }, client));
  // After the window no new stream starts; the ones in flight get `grace` seconds to finish, then are cancelled.
  await new Promise((r) => setTimeout(r, SECONDS * 1000));
  const graceTimer = setTimeout(() => ac.abort(), GRACE_S * 1000);
  const unfinishedAtDeadline = inFlight;
  await Promise.race([clients, new Promise((r) => ac.signal.addEventListener('abort', r))]);
  const unfinished = inFlight;
  ac.abort();
  await clients;
  clearTimeout(graceTimer);
  clearInterval(progress);
  const elapsedS = (performance.now() - t0) / 1000;
  sampleRss();
  clearInterval(sampler);
  const rssEnd = rssByPart(procs);
  const errorTotal = [...errorCounts.values()].reduce((a, b) => a + b, 0);
  const reloads = edgeReloads(system.stateDir);
  await paths.close();

  const peakByPart = new Map<string, number>();
  for (const p of procs) peakByPart.set(p.part, (peakByPart.get(p.part) ?? 0) + (peak.get(p.pid) ?? 0) / 1024);
  const rssRows = rssStart.map((s) => {
    const e = rssEnd.find((x) => x.part === s.part) ?? ({ part: s.part, pids: 0, rssMiB: 0 } as PartRss);
    return { part: s.part, pids: s.pids, start_mib: s.rssMiB, end_mib: e.rssMiB, peak_mib: round(peakByPart.get(s.part) ?? 0, 1), delta_mib: round(e.rssMiB - s.rssMiB, 1) };
  });
  const out = {
    concurrency: CONCURRENCY,
    seconds: SECONDS,
    tokens_per_stream: TOKENS,
    ai_code_tokens_per_s: TPS,
    via: VIA,
    streams_completed: completed,
    errors: errorTotal,
    error_messages: Object.fromEntries([...errorCounts.entries()].slice(0, 5)),
    in_flight_at_deadline: unfinishedAtDeadline,
    unfinished_after_grace: unfinished,
    edge_reloads: reloads,
    grace_s: GRACE_S,
    tokens_total: tokens,
    tokens_per_s_in_window: round(tokensInWindow / SECONDS, 1),
    ideal_tokens_per_s: TPS ? CONCURRENCY * TPS : null,
    first_token_ms: { p50: round(percentile(ttft, 50)), p99: round(percentile(ttft, 99)), max: round(Math.max(...ttft, 0)) },
    stream_ms: { p50: round(percentile(durations, 50)), p99: round(percentile(durations, 99)), max: round(Math.max(...durations, 0)) },
    elapsed_s: round(elapsedS, 1),
    rss: rssRows,
    rss_total_mib: { start: round(rssStart.reduce((a, b) => a + b.rssMiB, 0), 1), end: round(rssEnd.reduce((a, b) => a + b.rssMiB, 0), 1) },
    processes: procs.map((p) => ({ pid: p.pid, part: p.part, cmd: p.cmd.slice(0, 80) })),
    node: process.version,
    cpu: { model: cpus()[0]?.model ?? 'unknown', cores: cpus().length, loadavg_end: loadavg().map((x) => round(x, 2)) },
  };
  const lines = [
    `Obscura load: ${CONCURRENCY} concurrent streams × ${SECONDS} s, ${TOKENS} tokens each, AI code at ${TPS || 'unpaced'} tokens/s, via ${VIA}`,
    '',
    table(
      ['result', 'value'],
      [
        ['streams completed', completed],
        ['errors (0 expected)', `${errorTotal}${errorTotal ? '  MISS' : '  pass'}`],
        [`in flight at the deadline / unfinished after ${GRACE_S} s grace`, `${unfinishedAtDeadline} / ${unfinished}${unfinished ? '  MISS' : ''}`],
        ['tokens/s during the window', `${num(out.tokens_per_s_in_window, 0)}${TPS ? ` (ideal ${CONCURRENCY * TPS})` : ''}`],
        ['first token p50 / p99, ms', `${num(out.first_token_ms.p50)} / ${num(out.first_token_ms.p99)}`],
        ['stream duration p50 / p99, ms', `${num(out.stream_ms.p50)} / ${num(out.stream_ms.p99)}`],
      ],
    ),
    '',
    'RSS by part, MiB (VmRSS summed over the part\'s processes):',
    table(
      ['part', 'pids', 'start', 'end', 'peak', 'Δ'],
      [...rssRows.map((r) => [r.part, r.pids, num(r.start_mib, 1), num(r.end_mib, 1), num(r.peak_mib, 1), num(r.delta_mib, 1)]), ['total', '', num(out.rss_total_mib.start, 1), num(out.rss_total_mib.end, 1), '', num(out.rss_total_mib.end - out.rss_total_mib.start, 1)]],
    ),
  ];
  if (errorTotal) lines.push('', 'errors:', ...[...errorCounts.entries()].slice(0, 5).map(([m, n]) => `  ${n} × ${m}`));
  if (reloads) {
    lines.push('', `WARNING: the edge (wrangler dev) reloaded ${reloads} time(s) during the run, because sources it watches changed in the checkout; requests in flight then fail (a plain-text 503, or a reset).`);
  }
  process.stdout.write(`${lines.join('\n')}\n`);
  if (flags.json) process.stdout.write(`${JSON.stringify(out)}\n`);
  exitCode = errorTotal || unfinished ? 1 : 0;
} catch (e) {
  step(`FAILED: ${(e as Error).stack ?? e}`);
  exitCode = 1;
} finally {
  await system?.stop().catch(() => {});
  if (exitCode === 0) rmSync(benchDir, { recursive: true, force: true });
  else step(`kept ${benchDir} (logs under system/logs)`);
  step(`done in ${((performance.now() - started) / 1000).toFixed(1)} s`);
}
process.exit(exitCode);
