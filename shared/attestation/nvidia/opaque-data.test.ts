import { describe, expect, it } from 'vitest';
import { ObscuraError } from '../../errors.ts';
import { utf8 } from '../../bytes.ts';
import { parseNvidiaOpaqueData } from './opaque-data.ts';

function tlv(type: number, value: Uint8Array): number[] {
  return [type & 0xff, type >> 8, value.length & 0xff, value.length >> 8, ...value];
}

function code(fn: () => unknown): string {
  try {
    fn();
    return 'none';
  } catch (e) {
    if (e instanceof ObscuraError) return e.code;
    throw e;
  }
}

describe('parseNvidiaOpaqueData', () => {
  it('decodes the known fields and keeps unknown ones raw', () => {
    const bytes = Uint8Array.from([
      ...tlv(3, utf8('535.104.05\0')),
      ...tlv(6, Uint8Array.of(0x00, 0x9f, 0x00, 0x96, 0x01, 0, 0, 0)),
      ...tlv(14, Uint8Array.of(0xb1, 0x03, 0, 0)),
      ...tlv(12, Uint8Array.of(1, 0, 0, 0, 0, 1, 0, 0)),
      ...tlv(0x1234, Uint8Array.of(9, 9)),
      ...tlv(15, utf8('882\0\0\0')),
    ]);
    const o = parseNvidiaOpaqueData(bytes);
    expect(o).toMatchObject({ driverVersion: '535.104.05', vbiosVersion: '96.00.9F.00.01', boardId: 945, chipSku: '882' });
    expect(o.measurementCounts).toEqual([1, 256]);
    expect(o.fields.find((f) => f.type === 0x1234)).toEqual({ type: 0x1234, name: undefined, value: Uint8Array.of(9, 9) });
    expect(parseNvidiaOpaqueData(new Uint8Array()).fields).toEqual([]);
  });

  it.each([
    ['a truncated header', [3, 0, 1]],
    ['a value past the end', tlv(3, utf8('1.0')).slice(0, -1)],
    ['a duplicate type', [...tlv(3, utf8('1')), ...tlv(3, utf8('1'))]],
    ['type 255 (INVALID)', tlv(255, new Uint8Array())],
    ['a VBIOS version of 7 bytes', tlv(6, new Uint8Array(7))],
    ['a board id of 2 bytes', tlv(14, new Uint8Array(2))],
    ['measurement counts not whole u32s', tlv(12, new Uint8Array(6))],
    ['a driver version with a control byte', tlv(3, Uint8Array.of(0x35, 0x0a))],
    ['a driver version with bytes after its NUL', tlv(3, Uint8Array.of(0x35, 0, 0x35))],
    ['an empty FWID', tlv(20, new Uint8Array())],
  ])('refuses %s', (_, bytes) => {
    expect(code(() => parseNvidiaOpaqueData(Uint8Array.from(bytes)))).toBe('ERR_MALFORMED');
  });
});
