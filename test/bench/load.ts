/**
 * `npm run load`: N concurrent clients stream chat completions back to back for D seconds through the
 * full path (SDK → edge → worker → AI code in gVisor) of a local deployment started as `npm start`
 * starts it (test/e2e/harness.ts), optionally with a fault mid-window (the attestation service killed
 * and restarted, or one of two workers killed). Reports, per phase, completed streams, errors by type,
 * retries and requests that failed for good, and the RSS of every part at start, at each phase change
 * and at the end (and its peak).
 *
 *   node --import tsx test/bench/load.ts [--concurrency 200] [--seconds 60] [--tokens 64]
 *        [--tokens-per-second 50] [--via sdk|proxy] [--grace 30] [--workers 1]
 *        [--fault none|as-restart|worker-down] [--fault-at S] [--arrivals-per-s 1] [--json]
 *
 * Each client is one user: its own API key (`Bearer load-N`, so the edge's per-key rate limits apply
 * per user, as in production) and, via the SDK, its own session (bundle, secret). A failed request is
 * retried (up to MAX_ATTEMPTS, with backoff); an answer cut short is never counted as complete: a
 * stream counts only if it ended with [DONE] after all its tokens, and one that ended without them
 * without an error is counted apart (`cut_short_looking_complete`, 0 expected).
 *
 * Exit status 1 when a stream failed (without a fault) or a request failed for good, a stream did not
 * finish, an answer looked complete while cut short, or the state did not survive a restart. The
 * table goes to stdout, step lines to stderr, and with --json one JSON object is the last line.
 */
import { setMaxListeners } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Agent, fetch as undiciFetch } from 'undici';
import { ObscuraError } from '../../shared/errors.ts';
import { createObscuraFetch, type ObscuraFetch } from '../../client/sdk/obscura-fetch.ts';
import type { RunningSystem } from '../e2e/harness.ts';
import { FAULT_KINDS, killFirstWorker, restartAttestationService, servedByWorker, type AsRestartReport, type FaultKind, type WorkerDownReport } from './lib/load-faults.ts';
import { RssRecorder, type RssSnapshot } from './lib/load-rss.ts';
import { chatBody, clientPolicy, MODEL, PROMPT, SseTokenCounter } from './lib/paths.ts';
import { edgeReloads, startBenchSystem } from './lib/system.ts';
import { num, table } from './lib/report.ts';
import { percentile, round, step } from './lib/stats.ts';

const MAX_ATTEMPTS = 5; // per request: the first try and 4 retries
const RETRY_BACKOFF_MS = 200; // doubled per retry
const SESSION_SETUP_PARALLEL = 16;
const RSS_SAMPLE_MS = 1_000;

const { values: flags } = parseArgs({
  options: {
    concurrency: { type: 'string', default: '200' },
    seconds: { type: 'string', default: '60' },
    tokens: { type: 'string', default: '64' },
    'tokens-per-second': { type: 'string', default: '50' },
    via: { type: 'string', default: 'sdk' },
    grace: { type: 'string', default: '30' },
    settle: { type: 'string', default: '10' },
    workers: { type: 'string', default: '1' },
    fault: { type: 'string', default: 'none' },
    'fault-at': { type: 'string' },
    'arrivals-per-s': { type: 'string', default: '1' },
    json: { type: 'boolean' },
    help: { type: 'boolean' },
  },
  strict: true,
});
const USAGE =
  'usage: node --import tsx test/bench/load.ts [--concurrency 200] [--seconds 60] [--tokens 64] [--tokens-per-second 50] [--via sdk|proxy] [--grace 30] [--settle 10] [--workers 1] [--fault none|as-restart|worker-down] [--fault-at S] [--arrivals-per-s 1] [--json]\n';
if (flags.help) {
  process.stdout.write(USAGE);
  process.exit(0);
}
const CONCURRENCY = Number(flags.concurrency);
const SECONDS = Number(flags.seconds);
const TOKENS = Number(flags.tokens);
const TPS = Number(flags['tokens-per-second']);
const GRACE_S = Number(flags.grace);
// After the last stream, RSS is sampled once more after this many idle seconds: memory the parts
// give back once the load is gone (a V8 heap shrinks when allocation stops) is not a leak.
const SETTLE_S = Number(flags.settle);
const VIA = flags.via === 'proxy' ? 'proxy' : 'sdk';
const FAULT = flags.fault as FaultKind;
const WORKERS = Number(flags.workers);
const FAULT_AT_S = flags['fault-at'] === undefined ? SECONDS / 2 : Number(flags['fault-at']);
// New users arriving during the window (own key, own session), each retried until it gets in: they
// exercise the secret exchange across a restart. The proxy has one session, so none there.
const ARRIVALS_PER_S = VIA === 'proxy' ? 0 : Number(flags['arrivals-per-s']);
const bad = (why: string) => {
  process.stderr.write(`${why}\n${USAGE}`);
  process.exit(2);
};
for (const [k, v] of Object.entries({ CONCURRENCY, SECONDS, TOKENS, TPS, GRACE_S, SETTLE_S, WORKERS, FAULT_AT_S, ARRIVALS_PER_S })) {
  if (!Number.isFinite(v) || v < 0 || (['CONCURRENCY', 'SECONDS', 'TOKENS', 'WORKERS'].includes(k) && v === 0)) bad(`bad value for ${k}`);
}
if (!FAULT_KINDS.includes(FAULT)) bad(`--fault is one of ${FAULT_KINDS.join(', ')}`);
if (FAULT === 'worker-down' && WORKERS < 2) bad('--fault worker-down needs --workers 2 (or more)');
if (FAULT !== 'none' && FAULT_AT_S >= SECONDS) bad('--fault-at must be inside the window');

const benchDir = mkdtempSync(join(tmpdir(), 'obscura-load-'));
let system: RunningSystem | undefined;
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    step(`${sig}: stopping the system`);
    void (system?.stop() ?? Promise.resolve()).finally(() => process.exit(130));
  });
}

type Open = (signal: AbortSignal) => Promise<AsyncIterable<Uint8Array>>;

/** A body that ended without an error but without the whole answer: must never happen. */
class CutShortWithoutError extends Error {}

/** What a failed attempt is counted as: the Obscura error code where there is one. */
function errorType(e: unknown): string {
  if (e instanceof CutShortWithoutError) return 'CUT SHORT WITHOUT AN ERROR';
  if (e instanceof ObscuraError) return e.code;
  const code = /"code":"(ERR_[A-Z_]+)"/.exec(String((e as Error)?.message ?? ''));
  if (code) return code[1];
  const err = e as { name?: string; message?: string; cause?: { code?: string } };
  return `${err?.name ?? 'Error'}: ${String(err?.message ?? e).slice(0, 80)}${err?.cause?.code ? ` (${err.cause.code})` : ''}`;
}

/** An error's message and its chain of causes (codes included), for the report. */
function describeError(e: unknown): string {
  const parts: string[] = [];
  for (let c = e as { message?: string; code?: string; cause?: unknown } | undefined, depth = 0; c && depth < 4; c = c.cause as typeof c, depth++) {
    parts.push(`${c.code ? `${c.code}: ` : ''}${String(c.message ?? c).slice(0, 160)}`);
  }
  return parts.join(' ← ');
}

/** A refusal in the answer's status: thrown with its code, so it is counted by type. */
async function refused(res: Response, what: string): Promise<never> {
  const text = await res.text().catch(() => '');
  throw new Error(`${what}: status ${res.status} ${text.slice(0, 200)}`);
}

/** One streamed completion through a user's SDK session: its opened (authenticated) SSE body. */
function sdkOpen(f: ObscuraFetch): Open {
  return async (signal) => {
    const res = await f('http://obscura.local/v1/chat/completions', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(chatBody(TOKENS, true)), signal });
    if (res.status !== 200 || !res.body) return refused(res, 'sdk');
    return res.body as unknown as AsyncIterable<Uint8Array>;
  };
}

/** One streamed completion through the client proxy with plain HTTP (what any OpenAI client sends). */
function proxyOpen(proxyUrl: string, key: string): Open {
  return async (signal) => {
    const res = await fetch(`${proxyUrl}/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
      body: JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: PROMPT }], max_tokens: TOKENS, stream: true }),
      signal,
    });
    if (res.status !== 200 || !res.body) return refused(res, 'client proxy');
    return res.body as unknown as AsyncIterable<Uint8Array>;
  };
}

interface Phase {
  name: string;
  from_s: number;
  completed: number;
  tokens: number;
  retries: number;
  failed_for_good: number;
  errors: Map<string, number>;
  new_sessions: { in: number; failed_for_good: number; retries: number };
  rss_at_start?: RssSnapshot;
}

const newPhase = (name: string, fromS: number): Phase => ({ name, from_s: fromS, completed: 0, tokens: 0, retries: 0, failed_for_good: 0, errors: new Map(), new_sessions: { in: 0, failed_for_good: 0, retries: 0 } });

const started = performance.now();
let exitCode = 0;
try {
  const upArgs = ['--tokens-per-second', String(TPS)];
  if (FAULT === 'as-restart') upArgs.push('--restart', 'on-failure');
  step(`starting the system (${WORKERS} worker${WORKERS > 1 ? 's' : ''}, AI code paced at ${TPS || 'unpaced'} tokens/s${FAULT === 'as-restart' ? ', up --restart on-failure' : ''})…`);
  system = await startBenchSystem(join(benchDir, 'system'), { args: upArgs, workers: WORKERS });
  const sys = system;
  // No cap on connections to the edge: each stream is one request in flight on its own connection.
  // workerd closes a client connection idle for 5 s without saying so (no Keep-Alive header), so a
  // socket kept longer can be reused just as it closes ("fetch failed"): keep them 4 s at most.
  const agent = new Agent({ connect: { ca: sys.caPem }, keepAliveTimeout: 4_000, keepAliveMaxTimeout: 4_000 });
  const viaAgent = ((url: string, init?: RequestInit) => undiciFetch(url, { ...(init as object), dispatcher: agent })) as unknown as typeof fetch;
  const policy = clientPolicy(sys.stateDir);
  const user = (key: string): { open: Open; session?: ObscuraFetch } => {
    if (VIA === 'proxy') return { open: proxyOpen(sys.proxyUrl, key) };
    const f = createObscuraFetch({ endpoint: sys.edgeUrl, policy, fetch: viaAgent, headers: { authorization: `Bearer ${key}` } });
    return { open: sdkOpen(f), session: f };
  };
  const users = Array.from({ length: CONCURRENCY }, (_, i) => user(`load-${i}`));

  // Warm-up: every user's session (bundle, secret exchange), then one stream for the path.
  step(`warm-up: ${VIA === 'sdk' ? `${CONCURRENCY} sessions (bundle verified, secret exchanged), ` : ''}one stream…`);
  for (let i = 0; i < users.length; i += SESSION_SETUP_PARALLEL) await Promise.all(users.slice(i, i + SESSION_SETUP_PARALLEL).map((u) => u.session?.session.secret()));
  for await (const _ of await users[0].open(new AbortController().signal)) void _;

  const rss = new RssRecorder(sys.stateDir, WORKERS);
  const rssStart = rss.sample();
  rss.start(RSS_SAMPLE_MS);

  step(`load: ${CONCURRENCY} concurrent streams of ${TOKENS} tokens via ${VIA === 'sdk' ? 'the SDK → edge' : 'the client proxy → edge'}, for ${SECONDS} s${FAULT !== 'none' ? `; fault ${FAULT} at ${FAULT_AT_S} s` : ''}…`);
  const ac = new AbortController();
  setMaxListeners(0, ac.signal); // one signal for all the streams
  const t0 = performance.now();
  const deadline = t0 + SECONDS * 1000;
  const giveUpAt = deadline + GRACE_S * 1000; // retries stop here
  const phases: Phase[] = [newPhase(FAULT === 'none' ? 'steady' : 'before', 0)];
  const phase = () => phases[phases.length - 1];
  const nextPhase = (name: string) => {
    const p = newPhase(name, round((performance.now() - t0) / 1000, 1));
    p.rss_at_start = rss.sample();
    phases.push(p);
    step(`  ${p.from_s} s: phase "${name}"`);
  };
  let tokensInWindow = 0;
  let inFlight = 0;
  let cutShort = 0;
  const errorSamples: Record<string, string> = {}; // the first message of each type, with its cause's code
  const ttft: number[] = [];
  const durations: number[] = [];

  /** One stream read to its end; throws on any failure, or if it ended without all of its answer. */
  const oneStream = async (open: Open): Promise<void> => {
    const s0 = performance.now();
    const counter = new SseTokenCounter();
    inFlight++;
    try {
      for await (const chunk of await open(ac.signal)) {
        const before = counter.tokens;
        counter.push(chunk);
        const now = performance.now();
        phase().tokens += counter.tokens - before;
        if (now <= deadline) tokensInWindow += counter.tokens - before;
        if (before === 0 && counter.tokens > 0) ttft.push(now - s0);
      }
      if (!counter.done || counter.tokens !== TOKENS) {
        // The body ended without an error, but not with the whole answer: the one outcome that must never happen.
        if (!ac.signal.aborted) cutShort++;
        throw new CutShortWithoutError(`${counter.tokens} of ${TOKENS} tokens, ${counter.done ? '' : 'no '}[DONE]`);
      }
      durations.push(performance.now() - s0);
    } finally {
      inFlight--;
    }
  };

  /** One request, retried on failure; true once it completed. */
  const request = async (open: Open, kind: 'client' | 'new session'): Promise<boolean> => {
    for (let attempt = 1; ; attempt++) {
      try {
        await oneStream(open);
        if (kind === 'client') phase().completed++;
        else phase().new_sessions.in++;
        return true;
      } catch (e) {
        if (ac.signal.aborted) return false; // cancelled after the grace period: counted as unfinished
        const p = phase();
        const type = errorType(e);
        p.errors.set(type, (p.errors.get(type) ?? 0) + 1);
        errorSamples[type] ??= describeError(e);
        const maxAttempts = kind === 'client' ? MAX_ATTEMPTS : 2 * MAX_ATTEMPTS;
        if (attempt >= maxAttempts || performance.now() > giveUpAt) {
          if (kind === 'client') p.failed_for_good++;
          else p.new_sessions.failed_for_good++;
          return false;
        }
        if (kind === 'client') p.retries++;
        else p.new_sessions.retries++;
        await new Promise((r) => setTimeout(r, Math.min(RETRY_BACKOFF_MS * 2 ** (attempt - 1), 2_000)));
      }
    }
  };

  const client = async (i: number) => {
    while (performance.now() < deadline && !ac.signal.aborted) await request(users[i].open, 'client');
  };
  const arrivals: Promise<boolean>[] = [];
  const arrivalsLoop = async () => {
    for (let n = 0; ARRIVALS_PER_S > 0 && performance.now() < deadline; n++) {
      arrivals.push(request(user(`load-new-${n}`).open, 'new session'));
      await new Promise((r) => setTimeout(r, 1000 / ARRIVALS_PER_S));
    }
  };

  let asRestart: AsRestartReport | undefined;
  let workerDown: WorkerDownReport | undefined;
  let faultError: string | undefined;
  const fault = async () => {
    if (FAULT === 'none') return;
    await new Promise((r) => setTimeout(r, FAULT_AT_S * 1000));
    try {
      if (FAULT === 'as-restart') {
        step('  fault: SIGKILL the attestation service (up restarts it)');
        asRestart = await restartAttestationService(sys, () => nextPhase('AS down'));
        nextPhase('after AS restart');
        step(`  the attestation service is back after ${asRestart.down_ms} ms (pid ${asRestart.new_pid}); survived: ${JSON.stringify(asRestart.survived)}`);
      } else {
        step('  fault: SIGKILL the first worker (its process group)');
        workerDown = killFirstWorker(sys);
        nextPhase('one worker down');
      }
    } catch (e) {
      faultError = (e as Error).message;
      step(`  the fault run failed: ${faultError}`);
    }
  };

  const progress = setInterval(() => {
    const s = (performance.now() - t0) / 1000;
    const done = phases.reduce((a, p) => a + p.completed, 0);
    const errs = phases.reduce((a, p) => a + [...p.errors.values()].reduce((x, y) => x + y, 0), 0);
    step(`  ${s.toFixed(0)} s: ${done} streams done, ${inFlight} in flight, ${errs} errors`);
  }, 5_000);
  const clients = Promise.all(Array.from({ length: CONCURRENCY }, (_, i) => client(i)));
  const faultDone = fault();
  void arrivalsLoop();
  // After the window no new stream starts; the ones in flight (and their retries) get `grace` seconds.
  await new Promise((r) => setTimeout(r, SECONDS * 1000));
  const graceTimer = setTimeout(() => ac.abort(), GRACE_S * 1000);
  const unfinishedAtDeadline = inFlight;
  await Promise.race([Promise.all([clients, ...arrivals, faultDone]), new Promise((r) => ac.signal.addEventListener('abort', r))]);
  const unfinished = inFlight;
  ac.abort();
  await Promise.all([clients, ...arrivals, faultDone]);
  clearTimeout(graceTimer);
  clearInterval(progress);
  const elapsedS = (performance.now() - t0) / 1000;
  rss.stop();
  const rssEnd = rss.sample();
  if (workerDown) workerDown.served_after = servedByWorker(sys);
  const reloads = edgeReloads(sys.stateDir);
  await agent.close();
  let rssSettled: RssSnapshot | undefined;
  if (SETTLE_S > 0) {
    step(`idle for ${SETTLE_S} s, then RSS once more…`);
    await new Promise((r) => setTimeout(r, SETTLE_S * 1000));
    rssSettled = rss.sample();
  }

  // RSS rows: start, each later phase's start, end, peak.
  const moments: { name: string; snap: RssSnapshot }[] = [
    { name: 'start', snap: rssStart },
    ...phases.slice(1).map((p) => ({ name: `at "${p.name}"`, snap: p.rss_at_start! })),
    { name: 'end', snap: rssEnd },
    ...(rssSettled ? [{ name: `idle ${SETTLE_S} s`, snap: rssSettled }] : []),
  ];
  const rssRows = rss.parts().map((part) => ({
    part,
    pids: rssEnd.pids[part] ?? 0,
    start_mib: rssStart.mib[part] ?? 0,
    ...Object.fromEntries(phases.slice(1).map((p) => [`at_${p.name.replace(/\W+/g, '_')}_mib`, p.rss_at_start!.mib[part] ?? 0])),
    end_mib: rssEnd.mib[part] ?? 0,
    ...(rssSettled ? { settled_mib: rssSettled.mib[part] ?? 0 } : {}),
    peak_mib: rss.peak(part),
    delta_mib: round((rssEnd.mib[part] ?? 0) - (rssStart.mib[part] ?? 0), 1),
  }));
  const total = (s: RssSnapshot) => round(Object.values(s.mib).reduce((a, b) => a + b, 0), 1);
  const sumErrors = (p: Phase) => [...p.errors.values()].reduce((a, b) => a + b, 0);
  const completed = phases.reduce((a, p) => a + p.completed, 0);
  const errorTotal = phases.reduce((a, p) => a + sumErrors(p), 0);
  const failedForGood = phases.reduce((a, p) => a + p.failed_for_good + p.new_sessions.failed_for_good, 0);
  const errorTypes: Record<string, number> = {};
  for (const p of phases) for (const [t, n] of p.errors) errorTypes[t] = (errorTypes[t] ?? 0) + n;
  const phaseEnd = (i: number) => (i + 1 < phases.length ? phases[i + 1].from_s : round(elapsedS, 1));
  const survived = asRestart ? Object.values(asRestart.survived).every(Boolean) : true;

  const out = {
    concurrency: CONCURRENCY,
    seconds: SECONDS,
    tokens_per_stream: TOKENS,
    ai_code_tokens_per_s: TPS,
    via: VIA,
    workers: WORKERS,
    fault: FAULT,
    fault_at_s: FAULT === 'none' ? null : FAULT_AT_S,
    streams_completed: completed,
    errors: errorTotal,
    error_types: errorTypes,
    error_samples: errorSamples,
    retries: phases.reduce((a, p) => a + p.retries, 0),
    failed_for_good: failedForGood,
    cut_short_looking_complete: cutShort,
    new_sessions: ARRIVALS_PER_S ? { per_s: ARRIVALS_PER_S, started: arrivals.length, in: phases.reduce((a, p) => a + p.new_sessions.in, 0), retries: phases.reduce((a, p) => a + p.new_sessions.retries, 0) } : null,
    in_flight_at_deadline: unfinishedAtDeadline,
    unfinished_after_grace: unfinished,
    edge_reloads: reloads,
    grace_s: GRACE_S,
    tokens_total: phases.reduce((a, p) => a + p.tokens, 0),
    tokens_per_s_in_window: round(tokensInWindow / SECONDS, 1),
    ideal_tokens_per_s: TPS ? CONCURRENCY * TPS : null,
    first_token_ms: { p50: round(percentile(ttft, 50)), p99: round(percentile(ttft, 99)), max: round(Math.max(...ttft, 0)) },
    stream_ms: { p50: round(percentile(durations, 50)), p99: round(percentile(durations, 99)), max: round(Math.max(...durations, 0)) },
    phases: phases.map((p, i) => ({
      name: p.name,
      from_s: p.from_s,
      to_s: phaseEnd(i),
      completed: p.completed,
      tokens_per_s: round(p.tokens / Math.max(0.001, phaseEnd(i) - p.from_s), 1),
      errors: Object.fromEntries(p.errors),
      retries: p.retries,
      failed_for_good: p.failed_for_good,
      new_sessions: p.new_sessions,
    })),
    as_restart: asRestart ?? null,
    worker_down: workerDown ?? null,
    fault_error: faultError ?? null,
    elapsed_s: round(elapsedS, 1),
    rss: rssRows,
    rss_total_mib: { start: total(rssStart), end: total(rssEnd), ...(rssSettled ? { settled: total(rssSettled) } : {}) },
    settle_s: SETTLE_S,
    rss_timeline_mib: rss.timeline.filter((_, i) => i % 5 === 0 || i === rss.timeline.length - 1),
    node: process.version,
    cpu: { model: cpus()[0]?.model ?? 'unknown', cores: cpus().length, loadavg_end: loadavg().map((x) => round(x, 2)) },
  };

  const mark = (bad: boolean) => (bad ? '  MISS' : '  pass');
  const lines = [
    `Obscura load: ${CONCURRENCY} concurrent streams × ${SECONDS} s, ${TOKENS} tokens each, AI code at ${TPS || 'unpaced'} tokens/s, via ${VIA}, ${WORKERS} worker${WORKERS > 1 ? 's' : ''}, fault: ${FAULT}${FAULT === 'none' ? '' : ` at ${FAULT_AT_S} s`}`,
    '',
    table(
      ['result', 'value'],
      [
        ['streams completed', completed],
        [FAULT === 'none' ? 'errors (0 expected)' : 'errors (retried)', `${errorTotal}${FAULT === 'none' ? mark(errorTotal > 0) : ''}`],
        ['retries / requests failed for good (0 expected)', `${out.retries} / ${failedForGood}${mark(failedForGood > 0)}`],
        ['answers cut short without an error (0 expected)', `${cutShort}${mark(cutShort > 0)}`],
        ...(out.new_sessions ? [['new sessions during the window: in / started (retries)', `${out.new_sessions.in} / ${out.new_sessions.started} (${out.new_sessions.retries})`] as [string, string]] : []),
        [`in flight at the deadline / unfinished after ${GRACE_S} s grace`, `${unfinishedAtDeadline} / ${unfinished}${unfinished ? '  MISS' : ''}`],
        ['tokens/s during the window', `${num(out.tokens_per_s_in_window, 0)}${TPS ? ` (ideal ${CONCURRENCY * TPS})` : ''}`],
        ['first token p50 / p99, ms', `${num(out.first_token_ms.p50)} / ${num(out.first_token_ms.p99)}`],
        ['stream duration p50 / p99, ms', `${num(out.stream_ms.p50)} / ${num(out.stream_ms.p99)}`],
      ],
    ),
    '',
    'Per phase (errors by the phase they happened in; a stream counts where it completed):',
    table(
      ['phase', 'from s', 'to s', 'completed', 'tokens/s', 'errors', 'retries', 'failed', ...(ARRIVALS_PER_S ? ['new sessions in (retries)'] : [])],
      out.phases.map((p) => [p.name, num(p.from_s, 1), num(p.to_s, 1), p.completed, num(p.tokens_per_s, 0), Object.values(p.errors).reduce((a, b) => a + b, 0), p.retries, p.failed_for_good + p.new_sessions.failed_for_good, ...(ARRIVALS_PER_S ? [`${p.new_sessions.in} (${p.new_sessions.retries})`] : [])]),
    ),
  ];
  for (const p of out.phases) {
    const e = Object.entries(p.errors);
    if (e.length) lines.push(`  errors in "${p.name}":`, ...e.sort((a, b) => b[1] - a[1]).slice(0, 6).map(([m, n]) => `    ${n} × ${m}`));
  }
  if (asRestart) {
    lines.push(
      '',
      `attestation service: SIGKILL (pid ${asRestart.killed_pid}) → answering again (pid ${asRestart.new_pid}) in ${asRestart.down_ms} ms`,
      `  manifest head ${asRestart.before.head.slice(0, 16)}… → ${asRestart.after.head.slice(0, 16)}… (${asRestart.after.chain_entries} entries)${mark(!asRestart.survived.manifest_head)}`,
      `  workers ${asRestart.before.workers.length} → ${asRestart.after.workers.length}, same ids and standing${mark(!asRestart.survived.workers)}`,
      `  secrets: ${asRestart.before.secrets_accepted} accepted before the kill, ${String(asRestart.state_opened?.secrets)} restored (${String(asRestart.state_opened?.origin)})${mark(!asRestart.survived.secrets)}`,
    );
  }
  if (workerDown) lines.push('', `${workerDown.killed} killed (pid ${workerDown.killed_pid}); full answers per worker before: ${JSON.stringify(workerDown.served_before)}, at the end: ${JSON.stringify(workerDown.served_after)}`);
  if (faultError) lines.push('', `FAULT RUN FAILED: ${faultError}`);
  lines.push(
    '',
    "RSS by part, MiB (VmRSS summed over the part's processes; the tree is read again at each sample, so a restarted part counts with its new process):",
    table(
      ['part', 'pids', ...moments.map((m) => m.name), 'peak', 'Δ start→end'],
      [
        ...rssRows.map((r) => [r.part, r.pids, ...moments.map((m) => num(m.snap.mib[r.part] ?? 0, 1)), num(r.peak_mib, 1), num(r.delta_mib, 1)]),
        ['total', '', ...moments.map((m) => num(total(m.snap), 1)), '', num(total(rssEnd) - total(rssStart), 1)],
      ],
    ),
  );
  if (reloads) {
    lines.push('', `WARNING: the edge (wrangler dev) reloaded ${reloads} time(s) during the run, because sources it watches changed in the checkout; requests in flight then fail (a plain-text 503, or a reset).`);
  }
  process.stdout.write(`${lines.join('\n')}\n`);
  if (flags.json) process.stdout.write(`${JSON.stringify(out)}\n`);
  const failed = (FAULT === 'none' && errorTotal > 0) || failedForGood > 0 || cutShort > 0 || unfinished > 0 || !survived || faultError !== undefined;
  exitCode = failed ? 1 : 0;
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
