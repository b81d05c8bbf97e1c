/**
 * runsc's global flags for an AI code sandbox, as a pure function so the configuration is tested
 * (the GPU path included, which no machine here can run).
 */
export interface RunscOptions {
  stateRoot: string; // runsc --root: container state, never AI code output
  gpu?: boolean; // production: pass NVIDIA GPUs through nvproxy (runsc newer than Debian's)
}

export function runscGlobalArgs(opts: RunscOptions): string[] {
  const args = [
    `--root=${opts.stateRoot}`,
    '--network=none', // no interface but the sandbox's own loopback
    '--host-uds=create', // AI code may create its listening socket in the channel dir, never connect out
    '--oci-seccomp', // apply the bundle's seccomp rules inside the Sentry (no user namespaces)
  ];
  // No --debug, --debug-log, --strace or --log-packets: gVisor's logs could hold prompt bytes.
  if (opts.gpu) args.push('--nvproxy', '--nvproxy-docker');
  return args;
}

/** The full `runsc run` command line for one sandbox: the same in worker mode and exec mode. */
export function runscRunArgs(opts: RunscOptions, bundleDir: string, id: string): string[] {
  return [...runscGlobalArgs(opts), 'run', '--bundle', bundleDir, id];
}
