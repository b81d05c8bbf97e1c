// Host-side preparation of the llama AI code (run by `obscura up` and the tests, never inside the sandbox):
//
// 1. The engine goes INTO the AI code directory: node-llama-cpp, its runtime dependencies and the CPU
//    prebuilt llama.cpp (@node-llama-cpp/linux-x64) are copied from the project's node_modules into
//    ./node_modules (git-ignored). The sandbox binds this directory read-only at /app, and its digest
//    (worker-os/image-digest.ts directoryDigest), which the manifest pins, covers every file of the
//    engine, native libraries included: no other mount, and nothing the manifest does not pin.
// 2. The tiny model (make-gguf.mjs) is written to MODEL_OUT if it is not there yet.
//
//   node prepare.mjs [MODEL_OUT.gguf]
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeGguf } from './make-gguf.mjs';

export const LLAMA_APP_DIR = dirname(fileURLToPath(import.meta.url));
const PROJECT_ROOT = join(LLAMA_APP_DIR, '..', '..', '..');
const ENGINE_PACKAGES = ['node-llama-cpp', '@node-llama-cpp/linux-x64'];
// Not needed at run time: the llama.cpp sources as a git bundle (for building from source, which the
// server never does: build 'never').
const EXCLUDED = new Set(['node-llama-cpp/llama/gitRelease.bundle']);
const STAMP = '.obscura-engine.json';

function findPackage(name, fromDir) {
  for (let d = fromDir; ; d = dirname(d)) {
    const p = join(d, 'node_modules', name);
    if (existsSync(join(p, 'package.json'))) return p;
    if (dirname(d) === d) return undefined;
  }
}

/** The engine's packages (directories under the project's node_modules), following `dependencies`. */
export function engineClosure(projectRoot = PROJECT_ROOT) {
  const seen = new Map();
  const visit = (dir) => {
    if (seen.has(dir)) return;
    const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
    seen.set(dir, `${pkg.name}@${pkg.version}`);
    for (const dep of Object.keys(pkg.dependencies ?? {})) {
      const p = findPackage(dep, dir);
      if (!p) throw new Error(`${pkg.name} needs ${dep}, which is not installed (npm ci)`);
      visit(p);
    }
  };
  for (const name of ENGINE_PACKAGES) {
    const p = findPackage(name, projectRoot);
    if (!p) throw new Error(`${name} is not installed: run npm ci`);
    visit(p);
  }
  const modules = join(projectRoot, 'node_modules');
  return [...seen].map(([dir, id]) => ({ rel: relative(modules, dir).split(sep).join('/'), id })).sort((a, b) => (a.rel < b.rel ? -1 : 1));
}

/**
 * Copy the engine into `appDir`/node_modules unless the copy there is of the same packages. Built aside
 * and renamed into place, so a concurrent `obscura up` never digests a half-written engine.
 */
export function vendorEngine({ projectRoot = PROJECT_ROOT, appDir = LLAMA_APP_DIR } = {}) {
  const closure = engineClosure(projectRoot);
  const stamp = JSON.stringify({ packages: closure, excluded: [...EXCLUDED] }, null, 1);
  const target = join(appDir, 'node_modules');
  const current = () => {
    try {
      return readFileSync(join(target, STAMP), 'utf8');
    } catch {
      return undefined;
    }
  };
  if (current() === stamp) return { copied: false };
  // Staged outside appDir (whose every file is digested), on the same filesystem for the rename; each
  // staged tree ends in a directory named node_modules, which git ignores.
  const staging = join(appDir, '..', '.llama-staging');
  sweepStaging(staging);
  const building = join(staging, `${process.pid}`, 'new', 'node_modules');
  const old = join(staging, `${process.pid}`, 'old', 'node_modules');
  rmSync(join(staging, `${process.pid}`), { recursive: true, force: true });
  const copied = [];
  for (const { rel } of closure) {
    if (copied.some((c) => rel.startsWith(`${c}/`))) continue; // nested inside a package already copied
    copied.push(rel);
    cpSync(join(projectRoot, 'node_modules', rel), join(building, rel), {
      recursive: true,
      dereference: true,
      filter: (src) => !EXCLUDED.has(relative(join(projectRoot, 'node_modules'), src).split(sep).join('/')),
    });
  }
  mkdirSync(building, { recursive: true });
  writeFileSync(join(building, STAMP), stamp);
  try {
    if (existsSync(target)) {
      if (current() === stamp) return { copied: false }; // another process finished first
      mkdirSync(dirname(old), { recursive: true });
      renameSync(target, old);
    }
    try {
      renameSync(building, target);
    } catch (e) {
      if (current() !== stamp) throw e;
      return { copied: false };
    }
    return { copied: true };
  } finally {
    rmSync(join(staging, `${process.pid}`), { recursive: true, force: true });
    try {
      rmdirSync(staging);
    } catch {
      /* another process is staging */
    }
  }
}

/** Remove what crashed runs left staged (their process is gone). */
function sweepStaging(staging) {
  let entries = [];
  try {
    entries = readdirSync(staging);
  } catch {
    return;
  }
  for (const pid of entries) {
    let alive = false;
    try {
      process.kill(Number(pid), 0);
      alive = true;
    } catch (e) {
      alive = e.code === 'EPERM';
    }
    if (!alive) rmSync(join(staging, pid), { recursive: true, force: true });
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  vendorEngine();
  const out = process.argv[2];
  if (out && !existsSync(out)) {
    mkdirSync(dirname(out), { recursive: true });
    writeGguf(out);
  }
}
