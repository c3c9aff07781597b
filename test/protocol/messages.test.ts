import assert from 'node:assert/strict';
import { once } from 'node:events';
import { describe, it } from 'node:test';
import { Server } from '../../lib/framework/server.js';
import { DataFrame } from '../../lib/protocol/dataframe.js';
import {
  MessageKind,
  encodeBigBegin,
  encodeBufferBegin,
  encodeConsole,
  encodeCredit,
  encodeError,
  encodeIdBytes,
  encodeIdText,
  encodeStream,
  nameBytes,
} from '../../lib/protocol/messages.js';
import { MemoryTransport } from '../../lib/transport/memory.js';
import type { FrameBatch, PeerId } from '../../lib/transport/types.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

describe('message bytes (docs/protocol.md, "Messages")', () => {
  it('encodes each message kind exactly as documented', () => {
    assert.equal(hex(encodeConsole(1, nameBytes('echo'), 'hi')), '01000000' + '04' + '6563686f' + '6869');
    assert.equal(hex(encodeConsole(-1, nameBytes('echo'), 'hi')), '04' + '6563686f' + '6869');
    assert.equal(hex(encodeStream(2, nameBytes('add'), new DataFrame().writeInt32(5))), '02000000' + '03' + '616464' + '01' + '02' + '05000000');
    assert.equal(hex(encodeBufferBegin(3, 1, nameBytes('b'), 10, Buffer.from([1, 2]))), '03000000' + '01' + '01' + '62' + '0a000000' + '0102');
    assert.equal(hex(encodeBigBegin(4, nameBytes('up'), 300n, new DataFrame())), '04000000' + '02' + '7570' + '2c01000000000000' + '00');
    assert.equal(hex(encodeCredit(4, 65536)), '04000000' + '00000100');
    assert.equal(hex(encodeError(5, 'E_X', 'bad')), '05000000' + '03' + '455f58' + '626164');
    assert.equal(hex(encodeIdBytes(3, Buffer.from([3, 4, 5, 6, 7, 8, 9, 10]))), '03000000' + '030405060708090a');
    assert.equal(hex(encodeIdText(4, 'timed out')), '04000000' + '74696d6564206f7574');
    assert.deepEqual(
      Object.values(MessageKind),
      Array.from({ length: 12 }, (_, i) => 8 + i),
      'kinds 8 to 19, in the documented order',
    );
  });

  it('lets a client built from the documented bytes alone call a Server', async () => {
    const server = new Server({ quiet: true });
    server.stream('add', (df) => new DataFrame().writeInt32(df.readInt32() + df.readInt32()));
    const st = new MemoryTransport();
    const ep = await server.listen(st, { host: 'wire', port: 0 });
    const raw = new MemoryTransport();
    const peer: PeerId = await raw.connect(ep.address);
    const got = once(raw, 'frames') as Promise<[FrameBatch]>;
    // Stream request id 7, name "add", DataFrame [int32 40, int32 2], written by hand.
    raw.send(peer, 9, 0, Buffer.from('07000000' + '03' + '616464' + '02' + '02' + '28000000' + '02' + '02000000', 'hex'));
    const [batch] = await got;
    assert.equal(batch.kinds[0], 18, 'a Reply');
    const reply = batch.data.subarray(batch.offsets[0]!, batch.offsets[0]! + batch.lengths[0]!);
    // Reply id 7, DataFrame [int32 42].
    assert.equal(hex(reply), '07000000' + '01' + '02' + '2a000000');
    await server.close();
    await raw.shutdown();
  });
});
