/** The manifest log in a file (Node): written atomically, mode 0600. */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { ObscuraError } from '../../shared/errors.ts';
import type { ManifestLogStore, SeenManifestHead } from '../sdk/manifest-log.ts';

export class FileManifestLogStore implements ManifestLogStore {
  constructor(private readonly path: string) {}

  async load(): Promise<SeenManifestHead | undefined> {
    let text: string;
    try {
      text = readFileSync(this.path, 'utf8');
    } catch {
      return undefined;
    }
    try {
      const v = JSON.parse(text) as SeenManifestHead;
      if (typeof v.seq === 'number' && typeof v.head === 'string') return v;
    } catch {
      /* fall through */
    }
    throw new ObscuraError('ERR_MALFORMED', `the manifest log ${this.path} is corrupted; it was left as it is`);
  }

  async save(seen: SeenManifestHead): Promise<void> {
    mkdirSync(dirname(this.path), { recursive: true, mode: 0o700 });
    const tmp = `${this.path}.tmp`;
    writeFileSync(tmp, JSON.stringify(seen), { mode: 0o600 });
    renameSync(tmp, this.path);
  }
}
