/**
 * Writes the seed corpora of the libFuzzer targets (test/fuzz/corpus/<target>/)
 * from the encoders of this package, so the fuzzers start from valid inputs
 * and from the hostile ones we know about. Deterministic: running it again
 * gives the same files. Run after changing a wire format:
 *
 *   node --import tsx test/fuzz/make-corpus.ts
 *
 * Each file is one input in the layout its target's header comment describes
 * (a few selector bytes, then the bytes under test).
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { compress, compressedInfo, type CompressionMethod } from '../../lib/compression/index.js';
import { frameBytes } from '../../lib/transport/frame-codec.js';

const root = join(dirname(fileURLToPath(import.meta.url)), 'corpus');
const tokens = { headToken: 0x5a534846, tailToken: 0x5a535446 };

function text(n: number, seed: number): Buffer {
  const words = ['frame ', 'peer ', 'batch ', 'record ', 'the ', 'zserver ', '\n'];
  let s = seed >>> 0;
  let out = '';
  while (out.length < n) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out += words[(s >>> 16) % words.length];
  }
  return Buffer.from(out.slice(0, n));
}

function noise(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    b[i] = s >>> 24;
  }
  return b;
}

const u16 = (v: number) => [v & 0xff, (v >>> 8) & 0xff];
const u16be = (v: number) => [(v >>> 8) & 0xff, v & 0xff];
const u32be = (v: number) => [v >>> 24, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff];
const u32 = (v: number) => [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, v >>> 24];

function write(target: string, files: Record<string, Uint8Array | number[]>): void {
  const dir = join(root, target);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  for (const [name, bytes] of Object.entries(files)) writeFileSync(join(dir, name), Uint8Array.from(bytes));
}

const cat = (...parts: (Uint8Array | number[])[]) => Buffer.concat(parts.map((p) => Uint8Array.from(p)));

// frame_fuzz: mode (bit 0 custom tokens, bits 1-2 max_payload), encode byte, receive buffer.
{
  const hello = frameBytes(tokens, 8, 0, Buffer.from('hello'));
  const empty = frameBytes(tokens, 0, 0, Buffer.alloc(0));
  const flagged = frameBytes(tokens, 9, 3, text(40, 1));
  const custom = frameBytes({ headToken: 0x01020304, tailToken: 0xa1b2c3d4 }, 63, 1, text(20, 2));
  write('frame', {
    'one-frame': cat([0, 0], hello),
    'two-frames-and-a-partial': cat([0, 0], hello, flagged, hello.subarray(0, 11)),
    'empty-payload': cat([0, 0], empty),
    'custom-tokens': cat([1, ...u32(0x01020304), ...u32(0xa1b2c3d4), 0], custom),
    'encode-round-trip': cat([2, 0x25, 200], text(64, 3)),
    'bad-head-token': cat([0, 0], [0x46, 0x48, 0x53, 0x00], hello.subarray(4)),
    'bad-tail-token': cat([0, 0], hello.subarray(0, hello.length - 1), [0]),
    // A header declaring 16 MiB with one byte of it: the parser must say
    // "need more" without the caller having allocated anything yet.
    'declares-16MiB-sends-1-byte': cat([0, 0], u32(tokens.headToken), u32(16 << 20), [8, 0x41]),
    'declares-4GiB': cat([0, 0], u32(tokens.headToken), u32(0xffffffff), [8]),
    'oversize-for-small-max': cat([4, 0, 10], flagged),
  });
}

// compress_fuzz: byte 0 (bit 0 brrc, bit 7 doubles the size), declared size u16, raw stream.
function rawStream(data: Buffer, method: CompressionMethod, level?: 'fast' | 'default'): Buffer {
  const z = compress(data, method, { checksum: false, storeIfLarger: false, ...(level ? { level } : {}) });
  return z.subarray(compressedInfo(z).headerLength);
}
{
  const t = text(3000, 4);
  const small = text(200, 5);
  write('compress', {
    'deflate-fast': cat([0, ...u16(t.length)], rawStream(t, 'deflate-fixed', 'fast')),
    'deflate-default': cat([2, ...u16(t.length)], rawStream(t, 'deflate-fixed', 'default')),
    'deflate-round-trip': cat([10, ...u16(small.length)], rawStream(small, 'deflate-fixed')),
    'deflate-stored': cat([0, ...u16(300)], rawStream(noise(300, 6), 'deflate-fixed')),
    'deflate-empty': cat([0, 0, 0], rawStream(Buffer.alloc(0), 'deflate-fixed')),
    'deflate-size-lies': cat([0, ...u16(t.length + 1)], rawStream(t, 'deflate-fixed', 'fast')),
    'brrc-small': cat([1, ...u16(small.length)], rawStream(small, 'brrc')),
    'brrc-two-lanes': cat([0x81, ...u16(10000)], rawStream(text(20000, 7), 'brrc')),
    'brrc-truncated': cat([1, ...u16(t.length)], rawStream(t, 'brrc').subarray(0, 50)),
    'dynamic-block': cat([0, ...u16(100)], [0x05, 0xc1, 0x01, 0x01, 0x00, 0x00]),
  });
}

// frame_compress_fuzz: mode (bits 0-1 max_size, bit 2 round trip), compressor config, payload.
{
  const t = text(5000, 8);
  const files: Record<string, Uint8Array | number[]> = {};
  for (const method of ['deflate-fixed', 'brrc', 'zlib', 'brotli'] as const) {
    for (const checksum of [true, false]) {
      files[`${method}${checksum ? '-crc' : ''}`] = cat([1, 0], compress(t, method, { checksum }));
    }
  }
  files['none-hello'] = cat([0, 0], [0xa0, 0x05], Buffer.from('hello'));
  files['round-trip-brrc-crc'] = cat([4 | 2, 5], text(700, 9));
  files['round-trip-deflate-default'] = cat([4, 2], text(700, 10));
  // Method none declaring 16 MiB in 5 bytes: must never pass the header check.
  files['hostile-none-declares-16MiB'] = cat([0, 0], [0xa0, 0x80, 0x80, 0x80, 0x08]);
  files['hostile-deflate-declares-64MiB'] = cat([0, 0], [0xa1, 0x80, 0x80, 0x80, 0x20, 0x03, 0x00]);
  files['hostile-size-not-shortest'] = cat([0, 0], [0xa2, 0x85, 0x00, 0x00]);
  files['hostile-9-byte-size'] = cat([0, 0], [0xa1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
  const crcBad = compress(t, 'deflate-fixed', { checksum: true });
  crcBad[3] ^= 0x40;
  files['checksum-mismatch'] = cat([1, 0], crcBad);
  write('frame_compress', files);
}

// aead_fuzz: mode (bit 0 suite, bits 1-7 tampering), then records: kind, flags, u16 length, bytes.
{
  const rec = (kind: number, flags: number, body: Uint8Array) => [kind, flags, ...u16(body.length), ...body];
  write('aead', {
    'one-record': cat([0], rec(8, 0, text(40, 11))),
    'chacha-three-records': cat([1 | 6], rec(8, 0, text(30, 12)), rec(9, 1, text(5, 13)), rec(10, 0, noise(64, 14))),
    'rekey-between': cat([2], rec(8, 0, text(20, 15)), rec(5, 0, Buffer.alloc(0)), rec(8, 0, text(20, 16))),
    'short-record': cat([8], rec(8, 0, noise(7, 17))),
    'tag-only': cat([0x10], rec(4, 2, noise(16, 18))),
    'rekey-with-body': cat([1], rec(5, 0, noise(40, 19))),
  });
}

// kx_fuzz: 32-byte client key, two tampering bytes, ClientHello prefix.
{
  const p = (n: number, fill: number) => new Array<number>(n).fill(fill);
  write('kx', {
    'zero-key-low-order': cat(p(32, 0), [0, 0], [1, 1, 1]),
    'all-ff-key': cat(p(32, 0xff), [5, 0x20], [1, 2, 1]),
    'random-key': cat(noise(32, 20), [0x47, 0xe1], [1, 1, 1]),
    // A low-order point of Curve25519 (order 8), which X25519 maps to zero.
    'order-8-point': cat(
      [0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3, 0xfa, 0xf1, 0x9f, 0xc4, 0x6a,
       0xda, 0x09, 0x8d, 0xeb, 0x9c, 0x32, 0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16, 0x5f, 0x49, 0xb8, 0x00],
      [0x7f, 0xff],
      [1, 1, 1],
    ),
  });
}

// http_fuzz: byte 0 bit 0 (0: a request head, 1: a response head), then the head.
{
  const req = (s: string) => cat([0], Buffer.from(s, 'latin1'));
  const res = (s: string) => cat([1], Buffer.from(s, 'latin1'));
  const upgrade =
    'GET /zs HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
    'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nOrigin: http://127.0.0.1:8080\r\n\r\n';
  write('http', {
    'upgrade': req(upgrade),
    'upgrade-then-frame': cat(req(upgrade), [0x82, 0x85, 1, 2, 3, 4], text(5, 30)),
    'get-page': req('GET /index.html HTTP/1.1\r\nHost: a.example\r\nAccept: */*\r\n\r\n'),
    'post-body': req('POST /rpc HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello world'),
    'chunked': req('POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n'),
    'bad-version': req('GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: upgrade\r\nSec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==\r\nSec-WebSocket-Version: 8\r\n\r\n'),
    'folded-header': req('GET / HTTP/1.1\r\nHost: a\r\nX-A: one\r\n two\r\n\r\n'),
    'bare-lf': req('GET / HTTP/1.1\nHost: a\n\n'),
    'partial': req('GET / HTTP/1.1\r\nHost: a\r\n'),
    'response-101': res('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n'),
    'response-403': res('HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n'),
    'response-garbage': res('HTTP/1.1 9999\r\n\r\n'),
  });
}

// ws_fuzz: byte 0 bit 0 (1: the server side, frames must be masked), then frames.
{
  const frame = (fin: boolean, opcode: number, payload: Uint8Array, mask?: number[]) => {
    const n = payload.length;
    const len = n < 126 ? [n] : n < 65536 ? [126, ...u16be(n)] : [127, 0, 0, 0, 0, ...u32be(n)];
    len[0] = len[0]! | (mask ? 0x80 : 0);
    const body = mask ? Uint8Array.from(payload, (b, i) => b ^ mask[i & 3]!) : payload;
    return cat([(fin ? 0x80 : 0) | opcode], len, mask ?? [], body);
  };
  const m = [0x37, 0xfa, 0x21, 0x3d];
  write('ws', {
    'server-binary': cat([1], frame(true, 2, text(40, 31), m)),
    'server-fragments-and-ping': cat([1], frame(false, 2, text(20, 32), m), frame(true, 9, text(4, 33), m), frame(true, 0, text(20, 34), m)),
    'server-close-1000': cat([1], frame(true, 8, Buffer.from([0x03, 0xe8, ...Buffer.from('bye')]), m)),
    'server-close-bad-utf8': cat([1], frame(true, 8, Buffer.from([0x03, 0xe8, 0xc3, 0x28]), m)),
    'server-unmasked': cat([1], frame(true, 2, text(10, 35))),
    'server-16bit-length': cat([1], frame(true, 2, text(300, 36), m)),
    'server-64bit-length': cat([1], frame(true, 2, noise(65536, 37), m)),
    'server-text': cat([1], frame(true, 1, Buffer.from('hello'), m)),
    'server-reserved-bits': cat([1], [0xf2, 0x80, ...m]),
    'client-binary': cat([0], frame(true, 2, text(40, 38))),
    'client-masked': cat([0], frame(true, 2, text(8, 39), m)),
    'client-big-control': cat([0], frame(true, 9, noise(126, 40))),
  });
}
