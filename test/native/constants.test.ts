// The numbers C++ and TypeScript share have one source each side, checked here
// against each other: native/core/io_loop.h (ZS_EV_*, ZS_OP_*, ZS_CLOSE_*,
// ZS_IO_*, the refusal kinds and special close details) against
// lib/transport/native-constants.ts, and native/core/frame_codec.h (frame
// defaults) against lib/transport/common.ts and frame-codec.ts. A constant
// added to the header without its TypeScript twin fails here too. The loop's
// options cross the binding by name; the last test checks that every field
// name native/binding/tcp.cc reads is one loopOptions() writes, and back.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import * as common from '../../lib/transport/common.js';
import { FRAME_HEADER_SIZE } from '../../lib/transport/frame-codec.js';
import * as k from '../../lib/transport/native-constants.js';
import { loopOptions } from '../../lib/transport/native-options.js';
import { FrameFlag } from '../../lib/transport/types.js';

const root = join(import.meta.dirname, '..', '..');
const read = (f: string) => readFileSync(join(root, f), 'utf8');

/** NAME -> value of every `ZS_X = n` enum entry and `#define ZS_X value` of a header. */
function headerConstants(text: string): Map<string, number> {
  const out = new Map<string, number>();
  // Comments out first, so a name mentioned in a comment is not taken for a definition.
  const code = text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/\/\/.*$/gm, '');
  for (const m of code.matchAll(/\b(ZS_[A-Z0-9_]+)\s*=\s*(-?(?:0x[0-9A-Fa-f]+|\d+))\s*[,}\n]/g)) out.set(m[1]!, Number(m[2]));
  for (const m of code.matchAll(/^#define\s+(ZS_[A-Z0-9_]+)\s+\(?(-?(?:0x[0-9A-Fa-f]+|\d+))u?\)?\s*$/gm)) out.set(m[1]!, Number(m[2]));
  for (const m of code.matchAll(/^#define\s+(ZS_[A-Z0-9_]+)\s+\((\d+)u\s*<<\s*(\d+)\)\s*$/gm)) out.set(m[1]!, Number(m[2]) * 2 ** Number(m[3]));
  return out;
}

const loop = headerConstants(read('native/core/io_loop.h'));
const frame = headerConstants(read('native/core/frame_codec.h'));

/** The TypeScript name of a header constant of io_loop.h. */
const tsName = (name: string) => name.replace(/^ZS_/, '');

describe('constants shared by native/core and lib/transport', () => {
  it('the parser finds the header constants (so the checks below check something)', () => {
    assert.equal(loop.get('ZS_EV_OPEN'), 1);
    assert.equal(loop.get('ZS_OP_CLOSE_WITH'), 9);
    assert.equal(loop.get('ZS_CLOSE_REFUSED'), 10);
    assert.equal(loop.get('ZS_REFUSE_NOT_FOUND'), 0x8a);
    assert.equal(loop.get('ZS_PROTO_COMPRESSED_REFUSED'), -100);
    assert.equal(frame.get('ZS_FRAME_DEFAULT_MAX'), 1 << 20);
  });

  it('every ZS_EV_, ZS_OP_, ZS_IO_ flag and refusal kind of io_loop.h has its twin in native-constants.ts, with the same value', () => {
    const exported = k as unknown as Record<string, unknown>;
    const shared = [...loop].filter(([n]) => /^ZS_(EV|OP|REFUSE)_/.test(n) || /^ZS_IO_[A-Z_]+$/.test(n));
    assert.ok(shared.length >= 25, `found ${shared.length}`);
    for (const [name, value] of shared) {
      if (name === 'ZS_IO_OFFLOAD_BYTES') continue; // a size, native-record.ts's OFFLOAD_BYTES (checked below)
      assert.equal(exported[tsName(name)], value, `${tsName(name)} of native-constants.ts vs ${name}`);
    }
    // ... and nothing in the TypeScript file that the header lacks.
    for (const [name, value] of Object.entries(exported)) {
      if (typeof value !== 'number') continue;
      assert.equal(loop.get(`ZS_${name}`), value, `${name} has no ZS_${name} of the same value in io_loop.h`);
    }
  });

  it('ZS_CLOSE_* are CLOSE_REASONS in order, and the binding names them the same', async () => {
    const closes = [...loop].filter(([n]) => /^ZS_CLOSE_[A-Z_]+$/.test(n) && n !== 'ZS_CLOSE_B_TLS');
    assert.equal(closes.length, k.CLOSE_REASONS.length);
    for (const [name, code] of closes) {
      const reason = name.replace(/^ZS_CLOSE_/, '').toLowerCase().replace(/_/g, '-');
      assert.equal(k.CLOSE_REASONS[code], reason, `CLOSE_REASONS[${code}] vs ${name}`);
    }
    const { native } = await import('../../lib/native.js');
    const codes = native().TcpLoop.closeCodes;
    for (const [reason, code] of Object.entries(codes)) assert.equal(k.CLOSE_REASONS[code], reason);
    assert.equal(native().TcpLoop.closeTlsDetail, k.CLOSE_B_TLS);
  });

  it('frame defaults of frame_codec.h are those of common.ts and frame-codec.ts', async () => {
    assert.equal(common.DEFAULT_HEAD_TOKEN, frame.get('ZS_FRAME_DEFAULT_HEAD'));
    assert.equal(common.DEFAULT_TAIL_TOKEN, frame.get('ZS_FRAME_DEFAULT_TAIL'));
    assert.equal(common.DEFAULT_MAX_FRAME_SIZE, frame.get('ZS_FRAME_DEFAULT_MAX'));
    assert.equal(common.FRAME_OVERHEAD, frame.get('ZS_FRAME_OVERHEAD'));
    assert.equal(FRAME_HEADER_SIZE, frame.get('ZS_FRAME_HEADER'));
    assert.equal(FrameFlag.Compressed, frame.get('ZS_FLAG_COMPRESSED'));
    assert.equal(FrameFlag.Encrypted, frame.get('ZS_FLAG_ENCRYPTED'));
    const { OFFLOAD_BYTES } = await import('../../lib/transport/native-record.js');
    assert.equal(OFFLOAD_BYTES, loop.get('ZS_IO_OFFLOAD_BYTES'));
  });

  it('the option names native/binding/tcp.cc reads are exactly those loopOptions() writes', () => {
    const tcp = read('native/binding/tcp.cc');
    const body = tcp.slice(tcp.indexOf('static bool GetOptions'), tcp.indexOf('static bool GetTls'));
    const read_ = [...body.matchAll(/\{"(\w+)", &o->/g)].map((m) => m[1]).sort();
    assert.ok(read_.length >= 14, `found ${read_.length}`);
    assert.deepEqual(read_, Object.keys(loopOptions(undefined, true, 0)).sort());
  });
});
