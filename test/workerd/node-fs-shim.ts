/**
 * `node:fs` for test files running in workerd (vitest.workerd.config.ts redirects their `node:fs`
 * imports here, and only theirs): reads of files under test/vectors are served from the embedded
 * vectors module, so the Node test suites that read vectors run unchanged in workerd. Anything else
 * throws ENOENT: a test that needs more than the vectors does not belong in the workerd run.
 */
import { Buffer } from 'node:buffer';
import { VECTOR_ROOT, VECTORS } from 'virtual:obscura-vectors';

function pathOf(path: string | URL): string {
  if (path instanceof URL) {
    if (path.protocol !== 'file:') throw new TypeError(`only file: URLs can be read, not ${path.href}`);
    return decodeURIComponent(path.pathname);
  }
  return String(path);
}

/** The key in VECTORS for an absolute path under test/vectors (after resolving . and ..). */
function vectorKey(path: string): string | undefined {
  const parts: string[] = [];
  for (const part of path.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') parts.pop();
    else parts.push(part);
  }
  const normal = `/${parts.join('/')}`;
  const root = VECTOR_ROOT.endsWith('/') ? VECTOR_ROOT : `${VECTOR_ROOT}/`;
  return normal.startsWith(root) ? normal.slice(root.length) : undefined;
}

function enoent(path: string): Error {
  return Object.assign(new Error(`ENOENT: no such file in the workerd test vectors, open '${path}'`), { code: 'ENOENT', path });
}

type Encoding = BufferEncoding | { encoding?: BufferEncoding | null } | null | undefined;

export function readFileSync(file: string | URL, options?: Encoding): Buffer | string {
  const path = pathOf(file);
  const key = vectorKey(path);
  const base64 = key === undefined ? undefined : (VECTORS as Record<string, string>)[key];
  if (base64 === undefined) throw enoent(path);
  const bytes = Buffer.from(base64, 'base64');
  const encoding = typeof options === 'string' ? options : options?.encoding;
  return encoding ? bytes.toString(encoding) : bytes;
}

export function existsSync(file: string | URL): boolean {
  const key = vectorKey(pathOf(file));
  return key !== undefined && Object.hasOwn(VECTORS, key);
}

export const promises = {
  async readFile(file: string | URL, options?: Encoding): Promise<Buffer | string> {
    return readFileSync(file, options);
  },
};

export default { readFileSync, existsSync, promises };
