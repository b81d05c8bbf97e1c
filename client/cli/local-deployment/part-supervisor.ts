/**
 * The parts `obscura up` runs, watched. A part that exits while up is not stopping:
 *  - with `--restart on-failure`, is started again exactly as it was first started (same command,
 *    arguments, environment, log), at most RESTARTS_PER_WINDOW times in RESTART_WINDOW_MS;
 *  - else, when it is one of a group (the workers) of which another still runs, is reported, and the
 *    others keep serving (the edge fails over to them);
 *  - else stops the deployment (as before there was a supervisor).
 * What runs now is kept in `<state>/parts.json` (parts.ts `writePartsFile`).
 */
import { exitDescription, removePartsFile, startPart, writePartsFile, type RunningPart } from './parts.ts';

export type RestartPolicy = 'no' | 'on-failure';
export const RESTART_POLICIES: readonly RestartPolicy[] = ['no', 'on-failure'];

const RESTARTS_PER_WINDOW = 3;
const RESTART_WINDOW_MS = 60_000;

export interface PartSpec {
  name: string;
  command: string;
  args: string[];
  env?: Record<string, string>;
  logPath: string;
  url?: string;
  /** Parts of one group serve alike: losing one while another runs does not stop the deployment. */
  group?: string;
  /** Resolves once the part serves; throws if it does not (it is then stopped with the rest). */
  ready(part: RunningPart): Promise<void>;
}

interface Slot {
  spec: PartSpec;
  part: RunningPart;
  restarts: number;
  restartTimes: number[]; // within the last RESTART_WINDOW_MS
}

const running = (p: RunningPart) => p.child.exitCode === null && p.child.signalCode === null;

export class PartSupervisor {
  private readonly slots: Slot[] = [];
  private stopping = false;
  private watching = false; // from untilFatal on; before, a part that exits fails the start instead
  private onFatal?: () => void;

  constructor(private readonly opts: { stateDir: string; restart: RestartPolicy; step: (line: string) => void }) {}

  /** Start a part (its exits are watched from now on) and wait until it is ready. */
  async start(spec: PartSpec): Promise<RunningPart> {
    const slot: Slot = { spec, part: startPart(spec), restarts: 0, restartTimes: [] };
    this.slots.push(slot);
    this.record();
    this.watch(slot);
    await spec.ready(slot.part);
    return slot.part;
  }

  /**
   * Called once every part is ready: from now on exits are handled as above. Resolves when the
   * deployment must stop because a part exited and nothing took its place.
   */
  untilFatal(): Promise<void> {
    return new Promise((resolve) => {
      this.onFatal = resolve;
      this.watching = true;
      for (const slot of this.slots) if (!running(slot.part)) void this.exited(slot, slot.part);
    });
  }

  /** The parts, in start order, as they run now (a restarted part is its new process). */
  parts(): RunningPart[] {
    return this.slots.map((s) => s.part);
  }

  async stopAll(): Promise<void> {
    this.stopping = true;
    for (const slot of [...this.slots].reverse()) await slot.part.stop();
    removePartsFile(this.opts.stateDir);
  }

  private watch(slot: Slot): void {
    const part = slot.part;
    void part.exited.then(() => this.exited(slot, part));
  }

  private async exited(slot: Slot, part: RunningPart): Promise<void> {
    if (this.stopping || !this.watching || slot.part !== part) return;
    const { step } = this.opts;
    const now = Date.now();
    slot.restartTimes = slot.restartTimes.filter((t) => now - t < RESTART_WINDOW_MS);
    this.record();
    if (this.opts.restart === 'on-failure' && slot.restartTimes.length < RESTARTS_PER_WINDOW) {
      step(`${part.name} exited unexpectedly (${exitDescription(part.child)}); restarting it (see ${part.logPath})`);
      await part.stop(); // whatever is left of its process group
      if (this.stopping) return;
      slot.restartTimes.push(Date.now());
      slot.restarts++;
      slot.part = startPart(slot.spec);
      this.record();
      this.watch(slot);
      try {
        await slot.spec.ready(slot.part);
        step(`${part.name} restarted${slot.spec.url ? ` on ${slot.spec.url}` : ''}`);
      } catch (e) {
        if (this.stopping || !running(slot.part)) return; // its exit is handled by its own watch
        step(`${part.name} did not get ready after its restart (${(e as Error).message})`);
        await slot.part.stop(); // handled as another exit
      }
      return;
    }
    const group = slot.spec.group;
    const members = group ? this.slots.filter((s) => s.spec.group === group) : [];
    const serving = members.filter((s) => running(s.part));
    if (group && serving.length > 0) {
      step(`${part.name} exited unexpectedly (${exitDescription(part.child)}); see ${part.logPath}; ${serving.length} of ${members.length} ${group}s still serving`);
      return;
    }
    step(`${part.name} exited unexpectedly; see ${part.logPath}`);
    this.onFatal?.();
  }

  private record(): void {
    if (this.stopping) return;
    writePartsFile(this.opts.stateDir, {
      upPid: process.pid,
      parts: this.slots.map((s) => ({
        name: s.spec.name,
        pid: s.part.child.pid ?? 0,
        alive: running(s.part),
        ...(s.spec.url ? { url: s.spec.url } : {}),
        logPath: s.spec.logPath,
        restarts: s.restarts,
      })),
    });
  }
}
