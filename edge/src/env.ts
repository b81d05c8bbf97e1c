/**
 * The edge's bindings: generated from wrangler.toml by
 * `npx wrangler types edge/worker-configuration.d.ts --include-runtime=false --strict-vars=false`
 * (rerun after changing wrangler.toml; the edge tests fail while the file is out of date).
 * Every var is a string (wrangler vars); edge/src/config.ts parses them with safe defaults.
 */
export type Env = Cloudflare.Env;
