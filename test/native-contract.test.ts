/**
 * The contract between the addon's native transport and
 * src/transport/native-engine.ts: the record types, results, close and
 * reject codes, batch header slots, id layout, operation codes and the order
 * of the configuration array are written in both languages (the TypeScript
 * side as plain numbers, read by the batch loop without a table). The addon
 * lists its own (`transportConstants()`, crates/scgi-napi/src/transport/batch.rs):
 * any difference, or a constant one side has and the other has not, fails here.
 */
import { describe, expect, it } from 'vitest';
import { loadAddon } from '../src/parser/native.ts';
import * as engine from '../src/transport/native-engine.ts';

/** The constants of the contract on the TypeScript side: its exports with these prefixes. */
const CONTRACT = /^(EV|R|CLOSE|REJECT|BATCH|OP|SERVER_OP)_[A-Z_]+$|^SLOT_BITS$/;

describe.skipIf(process.platform !== 'linux')('the native transport contract', () => {
  const native = () => (loadAddon() as unknown as { transportConstants(): Record<string, unknown> }).transportConstants();

  it('every constant of the addon has the same value in src/transport/native-engine.ts', () => {
    const { CONFIG_FIELDS, ...rust } = native();
    const ts = Object.fromEntries(Object.entries(engine).filter(([name]) => CONTRACT.test(name)));
    expect(Object.keys(rust).length).toBeGreaterThan(20);
    expect(ts).toEqual(rust);
    expect(CONFIG_FIELDS).toEqual(engine.CONFIG_FIELDS);
  });
});

describe.skipIf(process.platform !== 'linux')('the native transport borrows no view of a SharedArrayBuffer', () => {
  type Addon = {
    transportConstants(): { CONFIG_FIELDS: string[] };
    transportCreate(o: Float64Array, cb: () => void, r503: Uint8Array): object;
    transportRespond(t: object, id: number, data: Uint8Array, close: number): number;
    transportWrite(t: object, id: number, data: Uint8Array): number;
    transportServer(t: object, op: number): number;
  };
  const a = () => loadAddon() as unknown as Addon;
  const options = (buffer: ArrayBufferLike) => {
    const o = new Float64Array(buffer, 0, a().transportConstants().CONFIG_FIELDS.length);
    o.set([65536, 100, 0, 10, 0, 0, 0, 65536, 0, 1000, Infinity]);
    return o;
  };
  const shared = (bytes: string) => {
    const u8 = new Uint8Array(new SharedArrayBuffer(bytes.length));
    u8.set(Buffer.from(bytes));
    return u8;
  };

  it('transportCreate refuses options or a 503 response over a SharedArrayBuffer (another thread could write them during the call)', () => {
    const len = a().transportConstants().CONFIG_FIELDS.length * 8;
    expect(() => a().transportCreate(options(new SharedArrayBuffer(len)), () => {}, Buffer.from('x'))).toThrow(TypeError);
    expect(() => a().transportCreate(options(new ArrayBuffer(len)), () => {}, shared('x'))).toThrow(TypeError);
    const t = a().transportCreate(options(new ArrayBuffer(len)), () => {}, Buffer.from('x'));
    try {
      expect(() => a().transportRespond(t, 0, shared('Status: 200 OK\r\n\r\n'), 0)).toThrow(TypeError);
      expect(() => a().transportWrite(t, 0, shared('ok'))).toThrow(TypeError);
      expect(a().transportWrite(t, 0, Buffer.from('ok'))).toBe(engine.R_STALE);
    } finally {
      a().transportServer(t, engine.SERVER_OP_CLOSE);
    }
  });
});
