/** Types of build-vectors.mjs (a plain Node script, so that it runs without a build step). */
export declare const REPO_ROOT: string;
export declare const VECTOR_ROOT: string;
/** The source of the ES module exporting VECTOR_ROOT and VECTORS (path under test/vectors -> base64). */
export declare function vectorsModuleSource(root?: string): string;
