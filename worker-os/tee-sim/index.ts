/** The simulated SEV-SNP TEE, Intel TDX machine and NVIDIA GPU (local deployments and tests). Node only. */
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
export { SIM_SEALING_SECRET_FILE, deriveSimulatedSealingKey, loadOrCreateMachineSecret, simulatedSealingKeys } from './sealing.ts';
export {
  SIM_GPU_DRIVER_VERSION,
  SIM_GPU_KIND,
  SIM_GPU_VBIOS_VERSION,
  SimulatedNvidiaGpu,
  openSimulatedNvidiaGpu,
  simulatedGpuMeasurements,
  simulatedGpuReference,
  type SimulatedGpuEvidence,
  type SimulatedGpuEvidenceRequest,
  type SimulatedGpuOptions,
} from './simulated-gpu.ts';
export { SIM_GPU_ROOT_PEM_FILE, SIM_GPU_STATE_FILE, loadOrCreateSimulatedGpuChain, simulatedGpuFwid, type SimulatedGpuChain } from './gpu-chain.ts';
export { SIM_TD_ATTRIBUTES, SIM_TD_XFAM, SimulatedTdxTee, openSimulatedTdxTee, simulatedMrSeam, type SimulatedTdQuoteRequest, type SimulatedTdxOptions } from './simulated-tdx.ts';
export { SIM_TDX_PLATFORM, SIM_TDX_ROOT_PEM_FILE, SIM_TDX_STATE_FILE, loadOrCreateSimulatedTdxChain, type SimulatedTdxChain } from './tdx-chain.ts';
export { SIM_TDX_COLLATERAL_VALIDITY_MS, SIM_TDX_TEE_TCB_SVN, issueSimulatedTdxCollateral, type SimulatedTdxCollateralOptions } from './tdx-collateral.ts';
export { assembleTdxQuote, encodeQeReport, encodeTdReportBody, encodeTdxQuoteHeader, writeTdxQuote, type QeReportFields, type TdReportBodyFields, type TdxQuoteParts } from './tdx-quote.ts';
