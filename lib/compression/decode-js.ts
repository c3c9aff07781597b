/**
 * `decompressJs`: the decoder of lib/compression's payload format
 * (docs/compression.md, "Format") in plain JavaScript, with no Node imports,
 * for the browser bundle, where the native codecs of `decompress` do not
 * exist. It decodes what `compress` writes with 'none', 'deflate-fixed',
 * 'brrc' and 'zlib' (raw DEFLATE, dynamic codes included), checks the
 * header's CRC-32C when there is one, and applies the same limits as
 * `decompress` before it allocates: `maxOutputLength`, and the most the
 * method can produce from the bytes given. 'brotli' payloads are refused
 * (there is no brotli decoder in JavaScript here).
 *
 * Output and errors are those of `decompress`, byte for byte and reason for
 * reason on everything `compress` writes and on damaged copies of it, with
 * two exceptions: DEFLATE with dynamic-code blocks decodes here where the
 * native inflater reports 'unsupported block type', and a damaged zlib
 * stream gets the reason of what is wrong with it where Node's zlib gives
 * 'corrupt stream'.
 */
import { checkBytes } from '../bytes.js';
import { DecodeError } from '../errors.js';
import { brrcDecodeJs } from './brrc-js.js';
import { crc32cJs } from './crc32c-js.js';
import { readDeclared, type DecompressOptions } from './declared.js';
import { inflateRawJs } from './inflate-js.js';

/**
 * Decompresses a payload written by `compress` into a new Uint8Array of
 * exactly the declared size, without native code. Throws DecodeError (code
 * 'ZS_DECODE') as `decompress` does; a 'brotli' payload fails with reason
 * 'unsupported method'.
 */
export function decompressJs(data: Uint8Array, options?: DecompressOptions): Uint8Array {
  const bytes = checkBytes(data, 'data');
  const { method, originalSize: size, checksum, headerLength } = readDeclared(bytes, options);
  const streamLength = bytes.length - headerLength;
  if (method === 'brotli') {
    throw new DecodeError('unsupported method', "brotli payloads are not decodable in a browser build; the sender must use 'deflate-fixed', 'brrc' or 'zlib'");
  }
  if (method === 'none' && streamLength !== size) {
    throw new DecodeError(streamLength < size ? 'truncated' : 'trailing data', `${streamLength} of ${size} bytes`);
  }
  const out = new Uint8Array(size);
  if (method === 'none') out.set(bytes.subarray(headerLength));
  else if (method === 'brrc') brrcDecodeJs(bytes, headerLength, bytes.length, out);
  else inflateRawJs(bytes, headerLength, bytes.length, out, method);
  if (checksum !== undefined && crc32cJs(out) !== checksum) throw new DecodeError('checksum mismatch', method);
  return out;
}
