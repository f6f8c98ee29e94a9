/**
 * CGI response heads (RFC 3875 §6): `Status: 200 OK`, then fields, then a
 * blank line. `Status:` is the one form nginx, Apache httpd and lighttpd all
 * accept (Apache turns an `HTTP/1.1 200 OK` first line into a 500).
 */
import { STATUS_CODES } from 'node:http';
import { ScgiError } from '../errors.ts';

/** Response header fields: an object (array values repeat the field) or a list of pairs. */
export type OutgoingHeaders = Record<string, string | number | readonly string[] | undefined> | ReadonlyArray<readonly [string, string | number]>;

// RFC 9110 token characters.
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// Field values: visible characters, space and tab, obs-text; never CR, LF or NUL.
const BAD_VALUE = /[\r\n\0]/;

function invalid(message: string): ScgiError {
  return new ScgiError('ERR_SCGI_INVALID_RESPONSE_HEADER', message);
}

export function checkName(name: string): void {
  if (!TOKEN.test(name)) throw invalid(`invalid response header name ${JSON.stringify(name)}`);
}

export function checkValue(name: string, value: string): void {
  if (BAD_VALUE.test(value)) throw invalid(`response header ${name} contains CR, LF or NUL: refusing (header injection)`);
}

/**
 * Build a CGI response head. Returns the text without the final blank line
 * (so a Content-Length can still be added) and whether it has a Content-Length.
 */
export function buildHead(status: number, reason: string | undefined, headers: OutgoingHeaders | undefined): { text: string; hasLength: boolean } {
  if (!Number.isInteger(status) || status < 100 || status > 999) {
    throw invalid(`invalid status code ${String(status)}`);
  }
  const why = reason || STATUS_CODES[status] || 'Unknown';
  checkValue('Status', why);
  let text = `Status: ${status} ${why}\r\n`;
  let hasLength = false;
  const add = (name: string, value: string | number) => {
    checkName(name);
    const v = String(value);
    checkValue(name, v);
    if (name.length === 14 && name.toLowerCase() === 'content-length') hasLength = true;
    text += `${name}: ${v}\r\n`;
  };
  if (headers !== undefined) {
    if (Array.isArray(headers)) {
      for (const [name, value] of headers as ReadonlyArray<readonly [string, string | number]>) add(name, value);
    } else {
      for (const [name, value] of Object.entries(headers as Record<string, string | number | readonly string[] | undefined>)) {
        if (value === undefined) continue;
        if (Array.isArray(value)) for (const v of value) add(name, v);
        else add(name, value as string | number);
      }
    }
  }
  return { text, hasLength };
}

/** A whole plain-text response, for the server's own answers (413, 500, 503). */
export function plainResponse(status: number, body: string): string {
  return `Status: ${status} ${STATUS_CODES[status]}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
}

/** The server's own refusals: 413 over maxBodySize, 503 over maxConnections or near the fd limit (either transport). */
export type Refusal = 413 | 503;

/** The whole response of a refusal, the same on both transports (the native engine writes it itself over maxConnections). */
export function refusalResponse(status: Refusal): string {
  return plainResponse(status, status === 413 ? 'Payload Too Large\n' : 'Service Unavailable\n');
}
