/** The edge's bindings (see wrangler.toml). */
export interface Env {
  /** Base URL of the attestation service, e.g. https://as.example.com */
  AS_URL: string;
  /** JSON: [{ "region": "local", "url": "https://127.0.0.1:9443" }, ...] */
  WORKERS: string;
  /** PEM of the vendor roots bundles must chain to (AMD's ARKs; the local root in a local deployment). */
  TRUSTED_ROOTS: string;
  /** Oldest bundle the edge still serves, in ms. */
  BUNDLE_MAX_AGE_MS: string;
}
