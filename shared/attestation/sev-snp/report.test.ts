import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { fromHex, toHex } from '../../bytes.ts';
import { ObscuraError } from '../../errors.ts';
import {
  SNP_REPORT_OFFSETS as O,
  SNP_REPORT_SIZE_BYTES,
  SNP_SIGNED_LENGTH_BYTES,
  type SnpReportBodyFields,
  assembleSnpReport,
  decodeGuestPolicy,
  decodeTcbVersion,
  encodeGuestPolicy,
  encodeSnpReportBody,
  encodeTcbVersion,
  parseSnpReport,
  productLineFromCpuid,
  productLineFromName,
  snpSignatureFromP1363,
  snpSignatureToP1363,
  tcbBelow,
} from './index.ts';

const VECTORS = new URL('../../../test/vectors/sev-snp/', import.meta.url);
const milan = new Uint8Array(readFileSync(new URL('milan/report.bin', VECTORS)));
const genoa = new Uint8Array(readFileSync(new URL('genoa/report.bin', VECTORS)));

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
    return undefined;
  } catch (e) {
    if (!(e instanceof ObscuraError)) throw e;
    return e.code;
  }
}

function withByte(report: Uint8Array, offset: number, value: number): Uint8Array {
  const copy = report.slice();
  copy[offset] = value;
  return copy;
}

/** A report from fields, with a dummy (unverifiable) signature: parsing does not check signatures. */
function reportFrom(fields: SnpReportBodyFields): Uint8Array {
  const sig = new Uint8Array(96).fill(7);
  return assembleSnpReport(encodeSnpReportBody(fields), sig);
}

describe('parseSnpReport on the real vectors', () => {
  it('Milan v2: fields at the ABI offsets', () => {
    const r = parseSnpReport(milan);
    expect(r.version).toBe(2);
    expect(r.signatureAlgo).toBe(1);
    expect(r.policy.raw).toBe(0xb0000n);
    expect(r.policy).toMatchObject({ smt: true, debug: true, migrationAgent: false, singleSocket: false, abiMajor: 0, abiMinor: 0 });
    expect(toHex(r.reportData)).toBe(`0102030405${'00'.repeat(59)}`);
    expect(r.reportedTcb).toMatchObject({ bootloader: 2, tee: 0, snp: 5, microcode: 68, layout: 'milan-genoa' });
    expect(r.reportedTcb.fmc).toBeUndefined();
    expect(r.cpuid).toBeUndefined();
    expect(r.productLine).toBeUndefined();
    expect(r.signerInfo).toMatchObject({ signingKey: 'vcek', maskChipKey: false, authorKeyEn: false });
    expect(r.vmpl).toBe(0);
    expect(r.platformInfo.smtEnabled).toBe(true);
    expect(r.currentFirmware).toEqual({ major: 1, minor: 49, build: 3 });
    expect(toHex(r.chipId).slice(0, 8)).toBe('3ac3fe21');
    expect(r.chipIdMasked).toBe(false);
    expect(toHex(r.reportIdMa)).toBe('ff'.repeat(32));
    expect(r.launchMitVector).toBeUndefined();
    expect(r.signedBytes).toEqual(milan.subarray(0, SNP_SIGNED_LENGTH_BYTES));
    expect(r.signature.r).toEqual(milan.subarray(0x2a0, 0x2e8));
    expect(r.signature.s).toEqual(milan.subarray(0x2e8, 0x330));
    // The hint decides the TCB layout of a v2 report, which has no CPUID.
    expect(parseSnpReport(milan, { productLine: 'Milan' }).productLine).toBe('Milan');
  });

  it('Genoa v3: CPUID, product line and measurement', () => {
    const r = parseSnpReport(genoa);
    expect(r.version).toBe(3);
    expect(r.cpuid).toEqual({ family: 0x19, model: 0x11, stepping: 0x01 });
    expect(r.productLine).toBe('Genoa');
    expect(toHex(r.measurement).startsWith('09ef32ac')).toBe(true);
    expect(r.reportedTcb).toMatchObject({ bootloader: 10, tee: 0, snp: 23, microcode: 84 });
    expect(r.policy).toMatchObject({ smt: true, debug: false, migrationAgent: false });
    expect(r.platformInfo).toMatchObject({ smtEnabled: true, tsmeEnabled: true, eccEnabled: true, aliasCheckComplete: true });
    expect(codeOf(() => parseSnpReport(genoa, { productLine: 'Milan' }))).toBe('ERR_VALUE_MISMATCH');
  });

  it('does not alias the caller’s buffer', () => {
    const copy = genoa.slice();
    const r = parseSnpReport(copy);
    copy[O.measurement] ^= 0xff;
    expect(r.measurement[0]).toBe(0x09);
    expect(r.raw).toEqual(genoa);
  });

  it('encodeSnpReportBody re-encodes both vectors byte for byte', () => {
    for (const raw of [milan, genoa]) {
      expect(encodeSnpReportBody(parseSnpReport(raw))).toEqual(raw.subarray(0, SNP_SIGNED_LENGTH_BYTES));
      const r = parseSnpReport(raw);
      expect(assembleSnpReport(r.signedBytes, snpSignatureToP1363(r.signature.r, r.signature.s))).toEqual(raw);
    }
  });
});

describe('parseSnpReport refuses', () => {
  it('wrong sizes and non-bytes', () => {
    expect(codeOf(() => parseSnpReport(milan.subarray(0, SNP_REPORT_SIZE_BYTES - 1)))).toBe('ERR_MALFORMED');
    expect(codeOf(() => parseSnpReport(new Uint8Array(SNP_REPORT_SIZE_BYTES + 1)))).toBe('ERR_MALFORMED');
    expect(codeOf(() => parseSnpReport('x' as unknown as Uint8Array))).toBe('ERR_USAGE');
  });

  it('versions outside 2..5 and signature algorithms other than 1', () => {
    for (const v of [0, 1, 6, 0x102]) {
      const r = milan.slice();
      new DataView(r.buffer).setUint32(O.version, v, true);
      expect(codeOf(() => parseSnpReport(r))).toBe('ERR_UNSUPPORTED_VERSION');
    }
    expect(codeOf(() => parseSnpReport(withByte(milan, O.signatureAlgo, 2)))).toBe('ERR_UNSUPPORTED_VERSION');
  });

  it('a non-zero byte in every reserved range, per version', () => {
    const always = [0x04c, 0x04f, 0x18b, 0x19f, 0x1eb, 0x1ef, 0x208, 0x29f, 0x330, 0x49f];
    for (const at of always) {
      expect(codeOf(() => parseSnpReport(withByte(milan, at, 1))), `0x${at.toString(16)}`).toBe('ERR_RESERVED_NONZERO');
      expect(codeOf(() => parseSnpReport(withByte(genoa, at, 1))), `0x${at.toString(16)}`).toBe('ERR_RESERVED_NONZERO');
    }
    // v2: the CPUID bytes are reserved; v2..v4: the mitigation vectors are reserved.
    expect(codeOf(() => parseSnpReport(withByte(milan, 0x188, 0x19)))).toBe('ERR_RESERVED_NONZERO');
    expect(codeOf(() => parseSnpReport(withByte(genoa, 0x1f8, 1)))).toBe('ERR_RESERVED_NONZERO');
    expect(codeOf(() => parseSnpReport(withByte(genoa, 0x207, 1)))).toBe('ERR_RESERVED_NONZERO');
  });

  it('reserved guest-policy and signer-info bits', () => {
    expect(codeOf(() => parseSnpReport(withByte(milan, O.policy + 2, 0x09)))).toBe('ERR_MALFORMED'); // bit 17 clear
    expect(codeOf(() => parseSnpReport(withByte(milan, O.policy + 3, 0x04)))).toBe('ERR_RESERVED_NONZERO'); // bit 26
    expect(codeOf(() => parseSnpReport(withByte(milan, O.policy + 7, 0x80)))).toBe('ERR_RESERVED_NONZERO'); // bit 63
    expect(codeOf(() => parseSnpReport(withByte(milan, O.signerInfo, 0x20)))).toBe('ERR_RESERVED_NONZERO');
    expect(codeOf(() => parseSnpReport(withByte(milan, O.signerInfo, 2 << 2)))).toBe('ERR_MALFORMED'); // SIGNING_KEY 2
    expect(parseSnpReport(withByte(milan, O.signerInfo, 7 << 2)).signerInfo.signingKey).toBe('none');
    expect(parseSnpReport(withByte(milan, O.signerInfo, 1 << 2)).signerInfo.signingKey).toBe('vlek');
    expect(parseSnpReport(withByte(milan, O.signerInfo, 3)).signerInfo).toMatchObject({ authorKeyEn: true, maskChipKey: true });
  });

  it('an unknown CPU family in a v3+ report (its TCB layout cannot be known)', () => {
    expect(codeOf(() => parseSnpReport(withByte(genoa, O.cpuidFamId, 0x1b)))).toBe('ERR_UNSUPPORTED_VERSION');
    expect(codeOf(() => parseSnpReport(withByte(genoa, O.cpuidModId, 0x50)))).toBe('ERR_UNSUPPORTED_VERSION');
  });
});

describe('versions 2 to 5 and the Turin TCB layout', () => {
  const base = parseSnpReport(genoa);

  it('parses encoder output of every version, with v5 mitigation vectors', () => {
    for (const version of [2, 3, 4, 5]) {
      const fields: SnpReportBodyFields = {
        ...base,
        version,
        cpuid: version >= 3 ? base.cpuid : undefined,
        ...(version >= 5 ? { launchMitVector: 0x11n, currentMitVector: 0x8000000000000001n } : { launchMitVector: undefined, currentMitVector: undefined }),
      };
      const r = parseSnpReport(reportFrom(fields), { productLine: 'Genoa' });
      expect(r.version).toBe(version);
      expect(r.measurement).toEqual(base.measurement);
      expect(r.reportedTcb.raw).toBe(base.reportedTcb.raw);
      if (version >= 3) expect(r.cpuid).toEqual(base.cpuid);
      else expect(r.cpuid).toBeUndefined();
      if (version >= 5) {
        expect(r.launchMitVector).toBe(0x11n);
        expect(r.currentMitVector).toBe(0x8000000000000001n);
      } else expect(r.launchMitVector).toBeUndefined();
    }
  });

  it('decodes Turin TCBs with the FMC byte first', () => {
    const tcb = { fmc: 3, bootloader: 4, tee: 5, snp: 6, microcode: 77 };
    const fields: SnpReportBodyFields = {
      ...base,
      cpuid: { family: 0x1a, model: 0x02, stepping: 0 },
      productLine: undefined,
      currentTcb: tcb,
      reportedTcb: tcb,
      committedTcb: tcb,
      launchTcb: tcb,
    };
    const raw = reportFrom(fields);
    expect(toHex(raw.subarray(O.reportedTcb, O.reportedTcb + 8))).toBe('030405060000004d');
    const r = parseSnpReport(raw);
    expect(r.productLine).toBe('Turin');
    expect(r.reportedTcb).toMatchObject({ ...tcb, layout: 'turin' });
    // The same bytes read with the Milan/Genoa layout mean something else: the layout matters.
    expect(decodeTcbVersion(raw.subarray(O.reportedTcb, O.reportedTcb + 8), 'milan-genoa')).toMatchObject({ bootloader: 3, tee: 4, snp: 0, microcode: 77 });
  });

  it('encodes TCBs per layout and refuses fields that do not exist in it', () => {
    expect(toHex(encodeTcbVersion({ bootloader: 2, tee: 0, snp: 5, microcode: 68 }, 'milan-genoa'))).toBe('0200000000000544');
    expect(codeOf(() => encodeTcbVersion({ fmc: 1, bootloader: 2, tee: 0, snp: 5, microcode: 68 }, 'milan-genoa'))).toBe('ERR_USAGE');
    expect(codeOf(() => encodeTcbVersion({ bootloader: 256, tee: 0, snp: 5, microcode: 68 }, 'milan-genoa'))).toBe('ERR_USAGE');
  });

  it('compares TCBs against minimums component by component', () => {
    const tcb = parseSnpReport(milan).reportedTcb;
    expect(tcbBelow(tcb, { bootloader: 2, snp: 5, microcode: 68 })).toEqual([]);
    expect(tcbBelow(tcb, { snp: 6, microcode: 60 })).toEqual(['snp 5 < 6']);
    expect(tcbBelow(tcb, { fmc: 1 })).toHaveLength(1);
  });

  it('refuses encoder fields of the wrong size', () => {
    expect(codeOf(() => encodeSnpReportBody({ ...base, measurement: new Uint8Array(47) }))).toBe('ERR_USAGE');
    expect(codeOf(() => encodeSnpReportBody({ ...base, version: 6 }))).toBe('ERR_USAGE');
    expect(codeOf(() => encodeSnpReportBody({ ...base, version: 2 }))).toBe('ERR_USAGE'); // CPUID in a v2 report
    expect(codeOf(() => encodeSnpReportBody({ ...base, launchMitVector: 1n }))).toBe('ERR_USAGE');
    expect(codeOf(() => encodeSnpReportBody({ ...base, productLine: 'Turin' }))).toBe('ERR_USAGE'); // CPUID says Genoa
  });
});

describe('guest policy, products, signature format', () => {
  it('decodes and encodes every defined policy bit', () => {
    const p = decodeGuestPolicy(0x3ff0000n | 0x0102n);
    expect(p).toMatchObject({
      abiMajor: 1,
      abiMinor: 2,
      smt: true,
      migrationAgent: true,
      debug: true,
      singleSocket: true,
      cxlAllow: true,
      memAes256Xts: true,
      raplDisable: true,
      ciphertextHiding: true,
      pageSwapDisable: true,
    });
    expect(encodeGuestPolicy({ ...p, raw: undefined } as never)).toBe(p.raw);
    expect(encodeGuestPolicy({ smt: true })).toBe(0x30000n);
    expect(encodeGuestPolicy({ smt: true, debug: true })).toBe(0xb0000n);
    expect(codeOf(() => decodeGuestPolicy(0x10000n))).toBe('ERR_MALFORMED');
    expect(codeOf(() => decodeGuestPolicy(0x4020000n))).toBe('ERR_RESERVED_NONZERO');
  });

  it('maps CPUIDs and VCEK product names to product lines', () => {
    expect(productLineFromCpuid(0x19, 0x01)).toBe('Milan');
    expect(productLineFromCpuid(0x19, 0x11)).toBe('Genoa');
    expect(productLineFromCpuid(0x19, 0xa0)).toBe('Genoa');
    expect(productLineFromCpuid(0x1a, 0x02)).toBe('Turin');
    expect(productLineFromCpuid(0x17, 0x31)).toBeUndefined();
    expect(productLineFromName('Milan-B0')).toBe('Milan');
    expect(productLineFromName('Genoa')).toBe('Genoa');
    expect(productLineFromName('Turin-B1')).toBe('Turin');
    expect(codeOf(() => productLineFromName('Venice-A0'))).toBe('ERR_UNSUPPORTED_VERSION');
  });

  it('converts little-endian r,s to P1363 and back; refuses components wider than 48 bytes', () => {
    const p1363 = fromHex(`${'01'.repeat(47)}02${'03'.repeat(47)}04`);
    const field = snpSignatureFromP1363(p1363);
    expect(field.length).toBe(512);
    expect(field[0]).toBe(0x02); // least significant byte first
    expect(field[72]).toBe(0x04);
    expect(snpSignatureToP1363(field.subarray(0, 72), field.subarray(72, 144))).toEqual(p1363);
    const wide = field.slice(0, 72);
    wide[48] = 1;
    expect(codeOf(() => snpSignatureToP1363(wide, field.subarray(72, 144)))).toBe('ERR_SIGNATURE_INVALID');
  });
});
