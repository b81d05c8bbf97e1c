/**
 * `obscura up`'s part supervision (client/cli/local-deployment/part-supervisor.ts) with real child
 * processes: a part that exits stops the deployment, or is restarted with the same command
 * (`--restart on-failure`, within its budget), or, as one of a group, leaves the others serving;
 * `<state>/parts.json` says what runs.
 */
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { PartSupervisor, type PartSpec, type RestartPolicy } from '../../client/cli/local-deployment/part-supervisor.ts';
import { readPartsFile, type RunningPart } from '../../client/cli/local-deployment/parts.ts';
import { alive } from '../e2e/harness.ts';

let dir: string;
let supervisor: PartSupervisor | undefined;
let lines: string[];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'obscura-supervisor-'));
  lines = [];
});

afterEach(async () => {
  await supervisor?.stopAll();
  supervisor = undefined;
  rmSync(dir, { recursive: true, force: true });
});

async function until(what: string, ok: () => boolean): Promise<void> {
  for (let i = 0; i < 300 && !ok(); i++) await new Promise((r) => setTimeout(r, 20));
  if (!ok()) throw new Error(`timed out waiting for ${what}`);
}

/** A part that marks itself ready with a file named after its pid, then idles. */
function spec(name: string, group?: string): PartSpec {
  return {
    name,
    command: process.execPath,
    args: ['-e', 'require("fs").writeFileSync(require("path").join(process.argv[1], String(process.pid)), ""); setInterval(() => {}, 1e6)', dir],
    logPath: join(dir, `${name}.log`),
    url: `https://127.0.0.1/${name}`,
    ...(group ? { group } : {}),
    ready: (part: RunningPart) => until(`${name} ready`, () => existsSync(join(dir, String(part.child.pid)))),
  };
}

function start(restart: RestartPolicy): PartSupervisor {
  supervisor = new PartSupervisor({ stateDir: dir, restart, step: (l) => lines.push(l) });
  return supervisor;
}

const pidOf = (name: string) => readPartsFile(dir)!.parts.find((p) => p.name === name)!.pid;

it('without restarts, a lone part that exits stops the deployment', async () => {
  const s = start('no');
  await s.start(spec('service'));
  let fatal = false;
  void s.untilFatal().then(() => (fatal = true));
  process.kill(pidOf('service'), 'SIGKILL');
  await until('fatal', () => fatal);
  expect(lines).toEqual([`service exited unexpectedly; see ${join(dir, 'service.log')}`]);
});

it('one of a group exits: the others keep serving until the last is gone', async () => {
  const s = start('no');
  await Promise.all([s.start(spec('worker', 'worker')), s.start(spec('worker-2', 'worker'))]);
  let fatal = false;
  void s.untilFatal().then(() => (fatal = true));
  const first = pidOf('worker');
  process.kill(first, 'SIGKILL');
  await until('the exit reported', () => lines.length === 1);
  expect(lines[0]).toBe(`worker exited unexpectedly (signal SIGKILL); see ${join(dir, 'worker.log')}; 1 of 2 workers still serving`);
  expect(readPartsFile(dir)!.parts.map((p) => [p.name, p.alive])).toEqual([['worker', false], ['worker-2', true]]);
  expect(fatal).toBe(false);
  process.kill(pidOf('worker-2'), 'SIGKILL');
  await until('fatal', () => fatal);
  expect(lines[1]).toBe(`worker-2 exited unexpectedly; see ${join(dir, 'worker-2.log')}`);
});

it('with on-failure, a part is started again with the same command, within its budget', async () => {
  const s = start('on-failure');
  await s.start(spec('service'));
  let fatal = false;
  void s.untilFatal().then(() => (fatal = true));
  const pids = [pidOf('service')];
  for (let restart = 1; restart <= 3; restart++) {
    process.kill(pids.at(-1)!, 'SIGKILL');
    await until(`restart ${restart}`, () => lines.filter((l) => l === 'service restarted on https://127.0.0.1/service').length === restart);
    const now = readPartsFile(dir)!.parts[0];
    expect(now).toMatchObject({ name: 'service', alive: true, restarts: restart });
    expect(pids).not.toContain(now.pid);
    expect(existsSync(join(dir, String(now.pid)))).toBe(true); // the same command ran again
    pids.push(now.pid);
  }
  expect(alive(pids.slice(0, -1))).toEqual([]);
  // A fourth exit within the minute: no more restarts, the deployment stops.
  process.kill(pids.at(-1)!, 'SIGKILL');
  await until('fatal', () => fatal);
  expect(lines.at(-1)).toBe(`service exited unexpectedly; see ${join(dir, 'service.log')}`);
  expect(lines.filter((l) => l.includes('restarting it'))).toHaveLength(3);
});

it('stopAll stops every part and removes parts.json', async () => {
  const s = start('on-failure');
  await Promise.all([s.start(spec('a')), s.start(spec('b', 'g'))]);
  const pids = s.parts().map((p) => p.child.pid!);
  expect(alive(pids)).toHaveLength(2);
  await s.stopAll();
  supervisor = undefined;
  expect(alive(pids)).toEqual([]);
  expect(readdirSync(dir)).not.toContain('parts.json');
  expect(lines).toEqual([]); // a stop is not an unexpected exit
});
