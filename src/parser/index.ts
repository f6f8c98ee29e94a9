/**
 * Backend selection, as `ws` does it: the TS parser is always loaded and is
 * the reference; the addon replaces it only when it loads.
 *
 * SCGI_PARSER=js      never touches the addon.
 * SCGI_PARSER=native  the addon or a thrown ERR_SCGI_NATIVE_UNAVAILABLE (with `cause`).
 * unset / auto        the addon when it loads, else the TS parser.
 */
import { ScgiError } from '../errors.ts';
import { jsBackend } from './js.ts';
import { loadNative, locateAddon } from './native.ts';
import type { ParserBackend } from './types.ts';

export interface ParserInfo {
  /** The backend that parses requests. */
  readonly backend: 'js' | 'native';
  /** What SCGI_PARSER asked for: 'js', 'native', or null (auto). */
  readonly forced: 'js' | 'native' | null;
  /** Why the addon did not load, when it did not (null when it loaded or was not tried). */
  readonly loadError: Error | null;
  /**
   * The addon file that was loaded: `scgi.<triple>.node` at the package root
   * (a local build) or in the `scgi-<triple>` package; null for the TS parser.
   */
  readonly file: string | null;
}

function select(): { backend: ParserBackend; info: ParserInfo } {
  const want = (process.env.SCGI_PARSER ?? '').trim().toLowerCase();
  if (want !== '' && want !== 'auto' && want !== 'js' && want !== 'native') {
    throw new ScgiError('ERR_SCGI_INVALID_OPTION', `SCGI_PARSER must be js, native or auto, not ${JSON.stringify(want)}`);
  }
  const forced = want === 'js' || want === 'native' ? want : null;
  if (forced === 'js') return { backend: jsBackend, info: { backend: 'js', forced, loadError: null, file: null } };
  try {
    const native = loadNative();
    return { backend: native, info: { backend: 'native', forced, loadError: null, file: locateAddon().file } };
  } catch (err) {
    const loadError = err instanceof Error ? err : new Error(String(err));
    if (forced === 'native') {
      throw new ScgiError('ERR_SCGI_NATIVE_UNAVAILABLE', `SCGI_PARSER=native but the addon did not load: ${loadError.message}`, {
        cause: loadError,
      });
    }
    return { backend: jsBackend, info: { backend: 'js', forced, loadError, file: null } };
  }
}

const selected = select();

/** The active backend's parse function. */
export const parse: ParserBackend['parse'] = selected.backend.parse;
/** Which parser is active and why. */
export const parserInfo: ParserInfo = Object.freeze(selected.info);
export { jsBackend };
export * from './types.ts';
