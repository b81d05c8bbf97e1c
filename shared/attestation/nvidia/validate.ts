/**
 * Judge verified GPU facts against reference values. Run only on facts from verified evidence: the
 * values mean nothing before their signature and chain have been checked.
 */
import { ObscuraError } from '../../errors.ts';
import type { NvidiaGpuFacts } from './facts.ts';
import { compareDriverVersions, isDriverVersion, type NvidiaGpuPolicy } from './policy.ts';

export function validateNvidiaGpuFacts(facts: NvidiaGpuFacts, policy: NvidiaGpuPolicy): void {
  for (const [key, allowed] of Object.entries(policy.measurements)) {
    const actual = facts.measurements[Number(key)];
    if (actual === undefined) throw violation(`the policy names measurement index ${key}, the GPU did not report it`);
    if (!allowed.some((v) => v.toLowerCase() === actual)) {
      throw new ObscuraError('ERR_MEASUREMENT_NOT_ALLOWED', `GPU measurement index ${key} is ${actual}, not an allowed value`);
    }
  }
  if (!policy.allowUnlistedIndices) {
    for (const key of Object.keys(facts.measurements)) {
      if (!Object.hasOwn(policy.measurements, key)) throw violation(`GPU measurement index ${key} is not in the policy`);
    }
  }

  const driver = facts.opaque.driverVersion;
  if (policy.driverVersions !== undefined) {
    if (driver === undefined) throw violation('the GPU did not report its driver version');
    if (!policy.driverVersions.includes(driver)) throw violation(`driver version ${driver} is not allowed`);
  }
  if (policy.minDriverVersion !== undefined) {
    if (driver === undefined || !isDriverVersion(driver)) throw violation('the GPU did not report a comparable driver version');
    if (compareDriverVersions(driver, policy.minDriverVersion) < 0) {
      throw violation(`driver version ${driver} is below the minimum ${policy.minDriverVersion}`);
    }
  }
  if (policy.vbiosVersions !== undefined) {
    const vbios = facts.opaque.vbiosVersion;
    if (vbios === undefined) throw violation('the GPU did not report its VBIOS version');
    if (!policy.vbiosVersions.some((v) => v.toUpperCase() === vbios)) throw violation(`VBIOS version ${vbios} is not allowed`);
  }
}

function violation(message: string): ObscuraError {
  return new ObscuraError('ERR_POLICY_VIOLATION', `NVIDIA GPU policy: ${message}`);
}
