/**
 * AMD EPYC product lines that run SEV-SNP. The product line decides the TCB_VERSION layout (Turin
 * added an FMC field and moved the others) and which ARK/ASK certify a VCEK.
 */
import { ObscuraError } from '../../errors.ts';

export type SnpProductLine = 'Milan' | 'Genoa' | 'Turin';

/** CPUID family/model/stepping as the report carries them (v3+, offsets 0x188..0x18A). */
export interface SnpCpuid {
  readonly family: number;
  readonly model: number;
  readonly stepping: number;
}

/** A representative CPUID per product line, for encoders and the simulated TEE. */
export const SNP_PRODUCT_CPUID: Readonly<Record<SnpProductLine, SnpCpuid>> = Object.freeze({
  Milan: Object.freeze({ family: 0x19, model: 0x01, stepping: 0x01 }),
  Genoa: Object.freeze({ family: 0x19, model: 0x11, stepping: 0x01 }),
  Turin: Object.freeze({ family: 0x1a, model: 0x02, stepping: 0x00 }),
});

/**
 * The product line of a CPUID family/model, or undefined when it is not one this verifier knows
 * (a newer part whose TCB layout cannot be assumed).
 */
export function productLineFromCpuid(family: number, model: number): SnpProductLine | undefined {
  if (family === 0x19) {
    if (model <= 0x0f) return 'Milan';
    if (model <= 0x1f || (model >= 0xa0 && model <= 0xaf)) return 'Genoa'; // Genoa, Bergamo, Siena
    return undefined;
  }
  if (family === 0x1a && model <= 0x1f) return 'Turin';
  return undefined;
}

/**
 * The product line of a VCEK/VLEK productName extension ("Milan-B0", "Genoa", "Turin-B0", ...).
 * Throws ERR_UNSUPPORTED_VERSION for a name it does not know.
 */
export function productLineFromName(productName: string): SnpProductLine {
  const family = productName.split('-')[0];
  switch (family) {
    case 'Milan':
      return 'Milan';
    case 'Genoa':
    case 'Siena': // KDS serves Siena under the Genoa chain
      return 'Genoa';
    case 'Turin':
      return 'Turin';
    default:
      throw new ObscuraError('ERR_UNSUPPORTED_VERSION', `unknown AMD product name "${productName}"`);
  }
}
