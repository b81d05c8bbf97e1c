/**
 * TCB_VERSION (SEV-SNP Firmware ABI, "TCB_VERSION Structure"): eight security patch levels (SPLs)
 * packed into a little-endian 64-bit value. Milan and Genoa: byte 0 BOOT_LOADER, 1 TEE, 2..5
 * reserved, 6 SNP, 7 MICROCODE. Turin: byte 0 FMC, 1 BOOT_LOADER, 2 TEE, 3 SNP, 4..6 reserved,
 * 7 MICROCODE. The reserved bytes are kept in `raw`; a VCEK certifies all eight bytes.
 */
import { ObscuraError } from '../../errors.ts';
import type { SnpProductLine } from './product.ts';

export const TCB_VERSION_BYTES = 8;

export type TcbLayout = 'milan-genoa' | 'turin';

/** The SPLs a policy or a VCEK names. `fmc` exists on Turin only. */
export interface TcbParts {
  readonly bootloader: number;
  readonly tee: number;
  readonly snp: number;
  readonly microcode: number;
  readonly fmc?: number;
}

export interface TcbVersion extends TcbParts {
  /** The whole 64-bit value, reserved bytes included. */
  readonly raw: bigint;
  readonly layout: TcbLayout;
}

const BYTE_INDEX: Record<TcbLayout, Record<'bootloader' | 'tee' | 'snp' | 'microcode' | 'fmc', number | undefined>> = {
  'milan-genoa': { bootloader: 0, tee: 1, snp: 6, microcode: 7, fmc: undefined },
  turin: { fmc: 0, bootloader: 1, tee: 2, snp: 3, microcode: 7 },
};

export function tcbLayoutOf(productLine: SnpProductLine | undefined): TcbLayout {
  return productLine === 'Turin' ? 'turin' : 'milan-genoa';
}

/** Decode 8 little-endian bytes. */
export function decodeTcbVersion(bytes: Uint8Array, layout: TcbLayout): TcbVersion {
  if (bytes.length !== TCB_VERSION_BYTES) throw new ObscuraError('ERR_MALFORMED', 'TCB_VERSION must be 8 bytes');
  let raw = 0n;
  for (let i = TCB_VERSION_BYTES - 1; i >= 0; i--) raw = (raw << 8n) | BigInt(bytes[i]);
  const idx = BYTE_INDEX[layout];
  return Object.freeze({
    raw,
    layout,
    bootloader: bytes[idx.bootloader!],
    tee: bytes[idx.tee!],
    snp: bytes[idx.snp!],
    microcode: bytes[idx.microcode!],
    ...(idx.fmc === undefined ? {} : { fmc: bytes[idx.fmc] }),
  });
}

/** Encode to 8 little-endian bytes. A TcbVersion (with `raw`) is written back exactly. */
export function encodeTcbVersion(tcb: TcbParts | TcbVersion, layout: TcbLayout): Uint8Array {
  const out = new Uint8Array(TCB_VERSION_BYTES);
  if ('raw' in tcb && typeof tcb.raw === 'bigint') {
    let v = tcb.raw;
    for (let i = 0; i < TCB_VERSION_BYTES; i++) {
      out[i] = Number(v & 0xffn);
      v >>= 8n;
    }
    return out;
  }
  const idx = BYTE_INDEX[layout];
  const put = (name: keyof TcbParts, value: number | undefined) => {
    const at = idx[name];
    if (value === undefined) return;
    if (at === undefined) throw new ObscuraError('ERR_USAGE', `TCB field ${name} does not exist in the ${layout} layout`);
    if (!Number.isInteger(value) || value < 0 || value > 0xff) throw new ObscuraError('ERR_USAGE', `TCB ${name} must be 0..255`);
    out[at] = value;
  };
  put('bootloader', tcb.bootloader);
  put('tee', tcb.tee);
  put('snp', tcb.snp);
  put('microcode', tcb.microcode);
  put('fmc', tcb.fmc);
  return out;
}

/** The components of `tcb` that are below `minimum` (empty when every named minimum is met). */
export function tcbBelow(tcb: TcbVersion, minimum: Partial<TcbParts>): string[] {
  const failing: string[] = [];
  for (const name of ['bootloader', 'tee', 'snp', 'microcode', 'fmc'] as const) {
    const min = minimum[name];
    if (min === undefined) continue;
    const have = tcb[name];
    if (have === undefined) {
      if (min > 0) failing.push(`${name} (absent in the ${tcb.layout} layout)`);
      continue;
    }
    if (have < min) failing.push(`${name} ${have} < ${min}`);
  }
  return failing;
}
