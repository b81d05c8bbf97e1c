/**
 * Validate a verified SNP report against reference values (policy.ts). Runs after verify: it trusts
 * the report's fields and only compares them.
 */
import { equalBytes, fromHex } from '../../bytes.ts';
import { ObscuraError } from '../../errors.ts';
import type { BytesOrHex, SnpReferencePolicy } from './policy.ts';
import { CHIP_ID_BYTES, type FirmwareVersion, HOST_DATA_BYTES, MEASUREMENT_BYTES, REPORT_DATA_BYTES, type SnpReport } from './report.ts';
import { tcbBelow } from './tcb.ts';

function bytesOf(value: BytesOrHex, length: number, name: string): Uint8Array {
  const bytes = typeof value === 'string' ? fromHex(value) : value;
  if (!(bytes instanceof Uint8Array) || bytes.length !== length) {
    throw new ObscuraError('ERR_USAGE', `policy ${name} must be ${length} bytes`);
  }
  return bytes;
}

function firmwareBelow(have: FirmwareVersion, min: FirmwareVersion): boolean {
  if (have.major !== min.major) return have.major < min.major;
  if (have.minor !== min.minor) return have.minor < min.minor;
  return have.build < min.build;
}

const fw = (v: FirmwareVersion) => `${v.major}.${v.minor} build ${v.build}`;

/**
 * Throws ERR_MEASUREMENT_NOT_ALLOWED (measurement not listed), ERR_VALUE_MISMATCH (report_data,
 * host_data, chip_id), ERR_POLICY_VIOLATION (guest policy bits, VMPL, TCB, firmware, SVN, signing
 * key), ERR_USAGE (a malformed reference value).
 */
export function validateSnpReport(report: SnpReport, policy: SnpReferencePolicy): void {
  if (!policy || !Array.isArray(policy.measurements)) {
    throw new ObscuraError('ERR_USAGE', 'an SNP reference policy must list the allowed measurements');
  }
  const allowed = policy.measurements.map((m, i) => bytesOf(m, MEASUREMENT_BYTES, `measurements[${i}]`));
  if (!allowed.some((m) => equalBytes(m, report.measurement))) {
    throw new ObscuraError('ERR_MEASUREMENT_NOT_ALLOWED', 'the launch measurement is not one the policy allows');
  }
  if (policy.reportData !== undefined && !equalBytes(bytesOf(policy.reportData, REPORT_DATA_BYTES, 'reportData'), report.reportData)) {
    throw new ObscuraError('ERR_VALUE_MISMATCH', 'REPORT_DATA differs from the expected value');
  }
  if (policy.hostData !== undefined && !equalBytes(bytesOf(policy.hostData, HOST_DATA_BYTES, 'hostData'), report.hostData)) {
    throw new ObscuraError('ERR_VALUE_MISMATCH', 'HOST_DATA differs from the expected value');
  }
  if (policy.chipIds !== undefined) {
    const chips = policy.chipIds.map((c, i) => bytesOf(c, CHIP_ID_BYTES, `chipIds[${i}]`));
    if (!chips.some((c) => equalBytes(c, report.chipId))) throw new ObscuraError('ERR_VALUE_MISMATCH', 'CHIP_ID is not one the policy allows');
  }
  if (policy.vmpl !== undefined && report.vmpl !== policy.vmpl) {
    throw new ObscuraError('ERR_POLICY_VIOLATION', `the report comes from VMPL ${report.vmpl}, expected ${policy.vmpl}`);
  }
  const gp = report.policy;
  if (gp.debug && policy.allowDebug !== true) {
    throw new ObscuraError('ERR_POLICY_VIOLATION', 'the guest policy allows debugging (DEBUG, bit 19): the host can read guest memory');
  }
  if (gp.migrationAgent && policy.allowMigrationAgent !== true) {
    throw new ObscuraError('ERR_POLICY_VIOLATION', 'the guest policy allows a migration agent (MIGRATE_MA, bit 18)');
  }
  if (gp.smt && policy.allowSmt === false) throw new ObscuraError('ERR_POLICY_VIOLATION', 'the guest policy allows SMT (bit 16)');
  if (!gp.singleSocket && policy.requireSingleSocket === true) {
    throw new ObscuraError('ERR_POLICY_VIOLATION', 'the guest policy does not require a single socket (bit 20)');
  }
  if (policy.minimumTcb) {
    for (const [name, tcb] of [['REPORTED_TCB', report.reportedTcb], ['CURRENT_TCB', report.currentTcb], ['COMMITTED_TCB', report.committedTcb]] as const) {
      const failing = tcbBelow(tcb, policy.minimumTcb);
      if (failing.length > 0) throw new ObscuraError('ERR_POLICY_VIOLATION', `${name} is below the minimum: ${failing.join(', ')}`);
    }
  }
  if (policy.minimumFirmware) {
    for (const [name, v] of [['current', report.currentFirmware], ['committed', report.committedFirmware]] as const) {
      if (firmwareBelow(v, policy.minimumFirmware)) {
        throw new ObscuraError('ERR_POLICY_VIOLATION', `the ${name} SNP firmware ${fw(v)} is below ${fw(policy.minimumFirmware)}`);
      }
    }
  }
  if (policy.minimumGuestSvn !== undefined && report.guestSvn < policy.minimumGuestSvn) {
    throw new ObscuraError('ERR_POLICY_VIOLATION', `GUEST_SVN ${report.guestSvn} is below ${policy.minimumGuestSvn}`);
  }
  const keys = policy.allowedSigningKeys ?? ['vcek', 'vlek'];
  const signer = report.signerInfo.signingKey;
  if (signer === 'none' || !keys.includes(signer)) {
    throw new ObscuraError('ERR_POLICY_VIOLATION', `reports signed by ${signer.toUpperCase()} are not allowed`);
  }
}
