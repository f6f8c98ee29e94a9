// The parser backends under test: the TS parser always; the addon when it
// loads. With SCGI_PARSER=native the addon must load (the suite fails, not skips).
import { jsBackend } from '../src/parser/js.ts';
import { loadNative } from '../src/parser/native.ts';
import type { ParserBackend } from '../src/parser/types.ts';

export const backends: ParserBackend[] = [jsBackend];
export let nativeError: unknown = null;
try {
  backends.push(loadNative());
} catch (err) {
  nativeError = err;
  if (process.env.SCGI_PARSER === 'native') throw err;
}
