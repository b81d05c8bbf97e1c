/** The module vitest.workerd.config.ts builds from test/vectors (see test/workerd/build-vectors.mjs). */
declare module 'virtual:obscura-vectors' {
  /** Absolute path of test/vectors where the module was built (forward slashes). */
  export const VECTOR_ROOT: string;
  /** Path relative to test/vectors -> base64 of the file's bytes. */
  export const VECTORS: Readonly<Record<string, string>>;
}
