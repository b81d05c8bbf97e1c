/** The simulated SEV-SNP TEE (local deployments and tests). Node only. */
export {
  SIM_DEFAULT_GUEST_POLICY,
  SIM_PLATFORM_INFO,
  SimulatedSnpTee,
  openSimulatedSnpTee,
  simulatedReportOfVersion,
  type SimulatedEvidence,
  type SimulatedReportRequest,
  type SimulatedReportVersion,
  type SimulatedTeeOptions,
} from './simulated-tee.ts';
export {
  SIM_ARK_PEM_FILE,
  SIM_DEFAULT_TCB,
  SIM_PRODUCT_NAME,
  SIM_STATE_FILE,
  SIM_VLEK_CSP_ID,
  loadOrCreateSimulatedChain,
  type SimulatedSigningKey,
  type SimulatedChain,
  type SimulatedVcek,
} from './chain.ts';
export { SIM_SEALING_SECRET_FILE, deriveSimulatedSealingKey, loadOrCreateMachineSecret } from './sealing.ts';
