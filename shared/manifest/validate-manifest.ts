import { ObscuraError } from '../errors.ts';
import { ManifestSchema, type Manifest } from './schema.ts';

export interface ManifestProblem {
  path: string; // JSON path, e.g. $.platforms["sev-snp"].measurements[0]
  message: string;
}

function jsonPath(path: readonly PropertyKey[]): string {
  let out = '$';
  for (const p of path) {
    if (typeof p === 'number') out += `[${p}]`;
    else if (typeof p === 'string' && /^[A-Za-z_][A-Za-z0-9_]*$/.test(p)) out += `.${p}`;
    else out += `[${JSON.stringify(String(p))}]`;
  }
  return out;
}

/** Every problem, each with the JSON path it is at; empty when the document is a valid manifest. */
export function manifestProblems(doc: unknown): ManifestProblem[] {
  const result = ManifestSchema.safeParse(doc);
  if (result.success) return [];
  return result.error.issues.map((i) => ({ path: jsonPath(i.path), message: i.message }));
}

export function parseManifest(doc: unknown): Manifest {
  const result = ManifestSchema.safeParse(doc);
  if (!result.success) {
    const problems = result.error.issues.map((i) => `${jsonPath(i.path)}: ${i.message}`);
    throw new ObscuraError('ERR_MALFORMED', `manifest is not valid: ${problems.join('; ')}`);
  }
  return result.data;
}
