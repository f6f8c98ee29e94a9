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
