/** AMD SEV-SNP attestation: parse (report.ts), verify (verify.ts), validate (validate.ts). */
export * from './report.ts';
export * from './guest-policy.ts';
export * from './platform-info.ts';
export * from './product.ts';
export * from './tcb.ts';
export * from './signature.ts';
export * from './vcek-extensions.ts';
export * from './verify.ts';
export * from './policy.ts';
export * from './validate.ts';
export * from './evidence.ts';
export * from './amd-roots.ts';
