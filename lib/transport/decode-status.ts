/**
 * The reasons of the native decoders' status codes (native/core/decode_status.h), for the
 * DecodeError of lib/compression and the close detail of a compressed frame the native
 * transport could not decode. A leaf module: both of those import it, it imports nothing.
 */

const kNativeReasons: Record<number, string> = {
  [-1]: 'truncated',
  [-2]: 'unsupported block type',
  [-3]: 'invalid literal/length code',
  [-4]: 'invalid distance code',
  [-5]: 'distance too far back',
  [-6]: 'output longer than declared size',
  [-7]: 'output shorter than declared size',
  [-8]: 'trailing data',
  [-9]: 'stored block length mismatch',
  [-10]: 'corrupt stream',
  [-11]: 'input too large',
};

/** The DecodeError reason of a native decoder's status code (native/core/decode_status.h). */
export function nativeDecodeReason(code: number): string {
  return kNativeReasons[code] ?? 'corrupt stream';
}
