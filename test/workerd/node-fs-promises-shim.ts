/** `node:fs/promises` for test files running in workerd: see node-fs-shim.ts. */
import { promises } from './node-fs-shim.ts';

export const readFile = promises.readFile;
export default { readFile };
