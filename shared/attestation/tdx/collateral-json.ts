/** Typed readers for the fields of Intel PCS collateral JSON: each wrong type or size is ERR_MALFORMED. */
import { ObscuraError } from '../../errors.ts';
import { fromHex } from '../../bytes.ts';

export type JsonObject = Record<string, unknown>;

function malformed(where: string, message: string): never {
  throw new ObscuraError('ERR_MALFORMED', `${where} ${message}`);
}

export function asObject(value: unknown, where: string): JsonObject {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) malformed(where, 'is not an object');
  return value as JsonObject;
}

export function field(o: JsonObject, key: string, where: string): unknown {
  if (!Object.hasOwn(o, key)) malformed(`${where}.${key}`, 'is missing');
  return o[key];
}

export function str(o: JsonObject, key: string, where: string): string {
  const v = field(o, key, where);
  if (typeof v !== 'string') malformed(`${where}.${key}`, 'is not a string');
  return v;
}

export function uint(o: JsonObject, key: string, where: string, max: number): number {
  const v = field(o, key, where);
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > max) malformed(`${where}.${key}`, `is not an integer in 0..${max}`);
  return v;
}

/** Hex of an exact byte length (PCS writes it in upper or lower case). */
export function hexBytes(o: JsonObject, key: string, where: string, length: number): Uint8Array {
  const v = str(o, key, where);
  if (v.length !== 2 * length || !/^[0-9a-fA-F]*$/.test(v)) malformed(`${where}.${key}`, `is not ${length} bytes of hex`);
  return fromHex(v);
}

export function array(o: JsonObject, key: string, where: string): unknown[] {
  const v = field(o, key, where);
  if (!Array.isArray(v)) malformed(`${where}.${key}`, 'is not an array');
  return v;
}

const ISO_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,3})?Z$/;

/** PCS dates are ISO 8601 in UTC ("2023-06-18T08:42:58Z"); nothing looser is accepted. */
export function date(o: JsonObject, key: string, where: string): Date {
  const v = str(o, key, where);
  const d = new Date(v);
  if (!ISO_UTC.test(v) || Number.isNaN(d.getTime())) malformed(`${where}.${key}`, 'is not an ISO 8601 UTC date');
  return d;
}

export function oneOf<T extends string>(o: JsonObject, key: string, where: string, allowed: readonly T[]): T {
  const v = str(o, key, where);
  if (!(allowed as readonly string[]).includes(v)) malformed(`${where}.${key}`, `"${v}" is not one of ${allowed.join(', ')}`);
  return v as T;
}

/** Collateral is current only inside [issueDate, nextUpdate] at the injected time. */
export function checkCollateralWindow(issueDate: Date, nextUpdate: Date, at: Date, what: string): void {
  if (at.getTime() < issueDate.getTime()) {
    throw new ObscuraError('ERR_NOT_YET_VALID', `${what} was issued at ${issueDate.toISOString()}, after the verification time`);
  }
  if (at.getTime() > nextUpdate.getTime()) {
    throw new ObscuraError('ERR_EXPIRED', `${what} expired at its nextUpdate ${nextUpdate.toISOString()}`);
  }
}
