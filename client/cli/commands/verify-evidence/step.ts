/**
 * The steps of `obscura verify-evidence` (parse / verify / validate) and what a platform's verifier
 * hands back. Kept free of heavy imports: the command loads it before it knows which platform runs.
 */
import { ObscuraError } from '../../../../shared/errors.ts';

export type Step = 'parse' | 'verify' | 'validate';

/** An ObscuraError tagged with the step it came from; the command prints both and exits by its class. */
export class StepFailure extends Error {
  readonly step: Step;
  readonly error: ObscuraError;

  constructor(step: Step, error: ObscuraError) {
    super(`${step} step failed: ${error.message} (${error.code})`, { cause: error });
    this.step = step;
    this.error = error;
  }
}

/** Runs `fn`, tagging any ObscuraError it throws with `step`. Other errors pass through (internal). */
export async function step<T>(name: Step, fn: () => T | Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof ObscuraError) throw new StepFailure(name, e);
    throw e;
  }
}

/** What a platform's verifier hands back to the command. */
export interface VerifyOutcome {
  /** The facts, already plain JSON values. */
  readonly json: Record<string, unknown>;
  /** A few lines for a human. */
  readonly summary: readonly string[];
}

/** Common options every platform takes. */
export interface CommonOptions {
  readonly at: Date;
  readonly policyPath?: string;
}

