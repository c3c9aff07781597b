/**
 * The "plain Node net" row of bench/echo.ts: a frame echo server written the
 * way a careful application would write one directly on node:net, with no
 * zserver code: parse the frames of docs/protocol.md out of each chunk (keep
 * an unfinished frame for the next one), call a handler per frame, encode the
 * replies and write them with one socket.write() per chunk.
 */
import net from 'node:net';
import { exitOnSignal, ready, requestedPort } from './_ready.js';

const HEAD = 0x5a534846;
const TAIL = 0x5a535446;
const MAX = 16 * 1024 * 1024;

/** The application handler: echo. */
const handle = (_kind: number, payload: Buffer): Buffer => payload;

function encode(kindByte: number, payload: Buffer): Buffer {
  const out = Buffer.allocUnsafe(payload.length + 13);
  out.writeUInt32LE(HEAD, 0);
  out.writeUInt32LE(payload.length, 4);
  out[8] = kindByte;
  payload.copy(out, 9);
  out.writeUInt32LE(TAIL, 9 + payload.length);
  return out;
}

const server = net.createServer({ noDelay: true }, (socket) => {
  let pending: Buffer | null = null;
  socket.on('error', () => socket.destroy());
  socket.on('data', (chunk: Buffer) => {
    const buf = pending ? Buffer.concat([pending, chunk]) : chunk;
    const replies: Buffer[] = [];
    let at = 0;
    while (buf.length - at >= 13) {
      const length = buf.readUInt32LE(at + 4);
      if (buf.readUInt32LE(at) !== HEAD || length > MAX) return socket.destroy();
      if (buf.length - at < 13 + length) break;
      if (buf.readUInt32LE(at + 9 + length) !== TAIL) return socket.destroy();
      const kindByte = buf[at + 8]!;
      replies.push(encode(kindByte, handle(kindByte & 0x3f, buf.subarray(at + 9, at + 9 + length))));
      at += 13 + length;
    }
    pending = at < buf.length ? buf.subarray(at) : null;
    if (replies.length === 1) socket.write(replies[0]!);
    else if (replies.length > 1) socket.write(Buffer.concat(replies));
  });
});
server.listen({ host: '127.0.0.1', port: requestedPort, backlog: 4096 }, () => ready((server.address() as net.AddressInfo).port));
exitOnSignal();
