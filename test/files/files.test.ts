/**
 * The file service (lib/files, docs/files.md): the commands, the sandbox against hostile names and
 * symlinks, every limit of docs/limits.md "File service", and resumable, verified transfers after a
 * link drop, over one and several connections.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { statSync } from 'node:fs';
import { mkdir, readFile, readdir, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { RemoteError } from '../../lib/errors.js';
import { FilesCommand, HASH_BLOCK, filesClient } from '../../lib/files/index.js';
import { DataFrame } from '../../lib/protocol/dataframe.js';
import { randomFile, setup, type Setup } from './helpers.js';

async function remoteCode(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof RemoteError, `expected a RemoteError, got ${String(err)}`);
    return err.remoteCode;
  }
  assert.fail('expected the call to fail');
}

describe('file service: commands and transfers', () => {
  let s: Setup;
  before(async () => {
    s = await setup();
  });
  after(async () => s.close());

  it('mkdir, upload, list, stat with hashes, download, rename, delete', async () => {
    await s.files.mkdir('a/b/c');
    const src = join(s.dir, 'src.bin');
    const data = await randomFile(src, 3 * 1024 * 1024 + 17);
    const up = await s.files.upload(src, 'a/b/c/f.bin');
    assert.equal(up.size, data.length);
    assert.equal(up.resumedFrom, 0);
    assert.deepEqual(await readFile(join(s.root, 'a/b/c/f.bin')), data);
    const md5 = await s.files.stat('a/b/c/f.bin', { hash: 'md5' });
    assert.equal(md5.hash, createHash('md5').update(data).digest('hex'));
    assert.equal((await s.files.stat('a/b/c/f.bin', { hash: 'xxh64' })).hash, up.hash);
    const { entries, truncated } = await s.files.list('a/b/c');
    assert.equal(truncated, false);
    assert.deepEqual(entries.map((e) => [e.name, e.type, e.size]), [['f.bin', 'file', data.length]]);
    const dst = join(s.dir, 'dst.bin');
    const down = await s.files.download('a/b/c/f.bin', dst, { chunkSize: 128 * 1024 });
    assert.equal(down.hash, up.hash);
    assert.deepEqual(await readFile(dst), data);
    await assert.rejects(stat(`${dst}.zspart`), { code: 'ENOENT' });
    await s.files.rename('a/b/c/f.bin', 'a/g.bin');
    assert.equal((await s.files.stat('a/g.bin')).size, data.length);
    assert.equal(await remoteCode(s.files.rename('a/g.bin', 'a/b')), 'ZS_FILES_EXISTS');
    await s.files.delete('a/g.bin');
    assert.equal(await remoteCode(s.files.stat('a/g.bin')), 'ZS_FILES_NOT_FOUND');
    assert.equal(await remoteCode(s.files.delete('a/b')), 'ZS_FILES_EXISTS'); // not empty
  });

  it('stores names NFC-normalised, so both spellings name one file', async () => {
    const src = join(s.dir, 'nfc.txt');
    await writeFile(src, 'café');
    await s.files.upload(src, 'cafe\u0301.txt'); // decomposed é
    const names = await readdir(s.root);
    assert.ok(names.includes('caf\u00e9.txt'), `stored as ${JSON.stringify(names)}`);
    assert.equal((await s.files.stat('caf\u00e9.txt')).size, 5);
  });

  it('md5 transfers check with MD5; empty files work', async () => {
    const src = join(s.dir, 'empty');
    await writeFile(src, '');
    const up = await s.files.upload(src, 'empty', { algorithm: 'md5' });
    assert.equal(up.hash, createHash('md5').digest('hex'));
    const down = await s.files.download('empty', join(s.dir, 'empty.out'), { algorithm: 'md5', connections: 3 });
    assert.equal(down.size, 0);
    assert.equal((await readFile(join(s.dir, 'empty.out'))).length, 0);
  });

  it('a download over 4 connections pulls 4 ranges at once and reassembles the file', async () => {
    const data = await randomFile(join(s.root, 'multi.bin'), 2 * 1024 * 1024 + 5);
    const before = s.server.stats().connections;
    const out = join(s.dir, 'multi.out');
    let last = 0;
    const r = await s.files.download('multi.bin', out, { connections: 4, chunkSize: 64 * 1024, onProgress: (p) => (last = p.done) });
    assert.equal(s.server.stats().connections - before, 3, 'three extra connections were made');
    assert.equal(last, data.length);
    assert.equal(r.size, data.length);
    assert.deepEqual(await readFile(out), data);
  });

  it('a download resumes after a link drop, over one and over several connections', async () => {
    const data = await randomFile(join(s.root, 'drop.bin'), 4 * 1024 * 1024);
    for (const connections of [1, 3]) {
      const out = join(s.dir, `drop-${connections}.out`);
      const cut = Math.floor(data.length * (0.2 + 0.6 * Math.random()));
      // Two 64 KiB reads in flight per connection: at the cut each range still has more than that
      // to fetch (at least 40 % of 4/3 MiB), so the drop always lands mid-download. With the default
      // window of 8 a late cut over 3 connections could find every byte already on its way.
      const err = await s.files
        .download('drop.bin', out, {
          connections,
          chunkSize: 64 * 1024,
          inFlight: 2,
          onProgress: (p) => {
            if (p.done >= cut) for (const peer of s.server.peers()) peer.close(true);
          },
        })
        .then(() => null, (e: Error) => e);
      assert.ok(err !== null, `the download over ${connections} connection(s) failed when the link dropped`);
      await s.client.connect();
      const kept = (await stat(`${out}.zspart`)).size;
      assert.ok(kept > 0);
      const r = await s.files.download('drop.bin', out, { connections, chunkSize: 64 * 1024 });
      assert.ok(r.resumedFrom > 0 && r.resumedFrom < data.length, `resumed from ${r.resumedFrom} (cut near ${cut})`);
      assert.deepEqual(await readFile(out), data);
    }
  });

  it('a download throws away a partial whose bytes differ from the server\'s, and starts over', async () => {
    const data = await randomFile(join(s.root, 'bad.bin'), 300_000);
    const out = join(s.dir, 'bad.out');
    await writeFile(`${out}.zspart`, Buffer.alloc(100_000, 7));
    const r = await s.files.download('bad.bin', out);
    assert.equal(r.resumedFrom, 0);
    assert.deepEqual(await readFile(out), data);
  });

  it('an upload resumes after a link drop from the server\'s verified partial', async () => {
    const src = join(s.dir, 'up-drop.bin');
    const data = await randomFile(src, 4 * 1024 * 1024);
    const cut = Math.floor(data.length * (0.2 + 0.6 * Math.random()));
    // Cut once the client passed `cut` AND the server has written part of the upload: bytes the
    // client handed to its transport may still be in flight, and a cut before the server's first
    // write rightly resumes from 0.
    const partial = join(s.root, '.zspart.up-drop.bin');
    const written = (): number => {
      try {
        return statSync(partial).size;
      } catch {
        return 0;
      }
    };
    let cutDone = false;
    await assert.rejects(
      s.files.upload(src, 'up-drop.bin', {
        onProgress: (p) => {
          if (cutDone || p.done < cut || written() === 0) return;
          cutDone = true;
          for (const peer of s.server.peers()) peer.close(true);
        },
      }),
    );
    await s.client.connect();
    await assert.rejects(stat(join(s.root, 'up-drop.bin')), { code: 'ENOENT' }, 'nothing appears before it is verified');
    assert.ok(!(await s.files.list('')).entries.some((e) => e.name.includes('zspart')), 'partials are not listed');
    const r = await s.files.upload(src, 'up-drop.bin');
    assert.ok(r.resumedFrom > 0, `resumed from ${r.resumedFrom}`);
    assert.deepEqual(await readFile(join(s.root, 'up-drop.bin')), data);
    await assert.rejects(stat(join(s.root, '.zspart.up-drop.bin')), { code: 'ENOENT' });
  });

  it('an upload whose bytes do not match the announced hash is refused and leaves nothing', async () => {
    const info = new DataFrame().writeString('liar.bin').writeInt64(0).writeInt64(1000).writeString('xxh64').writeString('0123456789abcdef');
    const code = await remoteCode(s.client.sendBigStream(FilesCommand.upload, Buffer.alloc(1000, 1), { info }));
    assert.equal(code, 'ZS_FILES_HASH');
    await assert.rejects(stat(join(s.root, 'liar.bin')), { code: 'ENOENT' });
    await assert.rejects(stat(join(s.root, '.zspart.liar.bin')), { code: 'ENOENT' });
  });

  it('an upload cannot resume past what the server has', async () => {
    const info = new DataFrame().writeString('gap.bin').writeInt64(500).writeInt64(1000).writeString('xxh64').writeString('0123456789abcdef');
    assert.equal(await remoteCode(s.client.sendBigStream(FilesCommand.upload, Buffer.alloc(500, 1), { info })), 'ZS_FILES_RESUME');
  });
});

describe('file service: the sandbox against hostile names', () => {
  let s: Setup;
  before(async () => {
    s = await setup();
    const outside = join(s.dir, 'outside');
    await mkdir(outside);
    await writeFile(join(outside, 'secret'), 'secret');
    await writeFile(join(s.root, 'ok.txt'), 'ok');
    await symlink(outside, join(s.root, 'out')); // a directory symlink leading out
    await symlink(join(outside, 'secret'), join(s.root, 'link')); // a file symlink leading out
    await symlink('ok.txt', join(s.root, 'inner-link')); // a symlink inside: still not followed
  });
  after(async () => s.close());

  const hostile = [
    '../x', 'a/../../x', '..', '/etc/passwd', '/', 'a//b', './ok.txt', 'a/./b', 'x\u0000y', 'x\ny', 'a\\..\\b',
    '.zspart.ok.txt', 'd/.zspart.f', 'x'.repeat(300), 'a/'.repeat(600), '\u202e', 'a/..',
  ];

  it('refuses hostile names for every command with ZS_FILES_PATH', async () => {
    for (const name of hostile) {
      if (name === '\u202e') continue; // a legal (if nasty) name: checked below that it stays inside
      for (const call of [
        () => s.files.stat(name),
        () => s.files.hash(name, 0, 10),
        () => s.client.call(FilesCommand.open, new DataFrame().writeString(name)),
        () => s.files.delete(name),
        () => s.files.mkdir(name),
        () => s.files.rename('ok.txt', name),
        () => s.client.call(FilesCommand.partial, new DataFrame().writeString(name).writeString('')),
      ]) {
        assert.equal(await remoteCode(call()), 'ZS_FILES_PATH', `name ${JSON.stringify(name).slice(0, 60)}`);
      }
    }
    const info = new DataFrame().writeString('../escape').writeInt64(0).writeInt64(3).writeString('xxh64').writeString('00');
    assert.equal(await remoteCode(s.client.sendBigStream(FilesCommand.upload, Buffer.from('abc'), { info })), 'ZS_FILES_PATH');
    assert.equal((await s.files.stat('ok.txt')).size, 2, 'ok.txt survived');
  });

  it('does not follow symlinks out of the root (or at all, as the last component)', async () => {
    assert.equal(await remoteCode(s.files.stat('out/secret')), 'ZS_FILES_PATH');
    assert.equal(await remoteCode(s.files.list('out')), 'ZS_FILES_PATH');
    assert.equal(await remoteCode(s.files.mkdir('out/new')), 'ZS_FILES_PATH');
    assert.equal(await remoteCode(s.files.rename('ok.txt', 'out/ok.txt')), 'ZS_FILES_PATH');
    assert.equal(await remoteCode(s.files.download('link', join(s.dir, 'stolen'))), 'ZS_FILES_PATH');
    assert.equal(await remoteCode(s.client.call(FilesCommand.open, new DataFrame().writeString('inner-link'))), 'ZS_FILES_PATH');
    const src = join(s.dir, 'up.txt');
    await writeFile(src, 'x');
    assert.equal(await remoteCode(s.files.upload(src, 'out/planted')), 'ZS_FILES_PATH');
    assert.deepEqual(await readdir(join(s.dir, 'outside')), ['secret']);
    assert.equal(await readFile(join(s.dir, 'outside', 'secret'), 'utf8'), 'secret');
    await s.files.delete('link'); // removes the link itself, never its target
    assert.equal(await readFile(join(s.dir, 'outside', 'secret'), 'utf8'), 'secret');
  });

  it('keeps odd but legal names inside the root', async () => {
    const src = join(s.dir, 'odd.txt');
    await writeFile(src, 'odd');
    for (const name of ['\u202e', ' leading space', 'dots...', '-rf', '%2e%2e', '~']) {
      await s.files.upload(src, name);
      assert.equal(await readFile(join(s.root, name.normalize('NFC')), 'utf8'), 'odd');
    }
  });
});

describe('file service: limits', () => {
  it('readOnly refuses every change and still serves downloads', async () => {
    const s = await setup({ readOnly: true });
    try {
      await writeFile(join(s.root, 'r.txt'), 'read me');
      const src = join(s.dir, 'w.txt');
      await writeFile(src, 'w');
      assert.equal(await remoteCode(s.files.upload(src, 'w.txt')), 'ZS_FILES_READ_ONLY');
      assert.equal(await remoteCode(s.files.rename('r.txt', 'q.txt')), 'ZS_FILES_READ_ONLY');
      assert.equal(await remoteCode(s.files.delete('r.txt')), 'ZS_FILES_READ_ONLY');
      assert.equal(await remoteCode(s.files.mkdir('d')), 'ZS_FILES_READ_ONLY');
      await s.files.download('r.txt', join(s.dir, 'r.out'));
      assert.equal(await readFile(join(s.dir, 'r.out'), 'utf8'), 'read me');
    } finally {
      await s.close();
    }
  });

  it('quota counts files and partials per root; deleting frees it', async () => {
    const s = await setup({ quota: 100_000 });
    try {
      const src = join(s.dir, 'q.bin');
      await randomFile(src, 60_000);
      await s.files.upload(src, 'one.bin');
      assert.equal(await remoteCode(s.files.upload(src, 'two.bin')), 'ZS_FILES_QUOTA');
      await s.files.delete('one.bin');
      await s.files.upload(src, 'two.bin');
    } finally {
      await s.close();
    }
  });

  it('one upload per name at a time; a partial counts in the quota until it is finished or replaced', async () => {
    const s = await setup({ quota: 2_000_000 });
    try {
      const data = Buffer.alloc(1_500_000, 5);
      const info = () => new DataFrame().writeString('held.bin').writeInt64(0).writeInt64(data.length).writeString('md5').writeString(createHash('md5').update(data).digest('hex'));
      const partial = join(s.root, '.zspart.held.bin');
      const partialReaches = async (n: number) => {
        const deadline = Date.now() + 5000;
        while (Date.now() < deadline && (await stat(partial).then((st) => st.size, () => 0)) < n) await new Promise((r) => setTimeout(r, 10));
        assert.ok((await stat(partial)).size >= n, `the server wrote ${n} bytes of the partial`);
      };
      // The first upload sends 1,200,000 bytes and then waits (the server writes in batches of
      // 1 MiB, so the partial shows 1 MiB), so it is in progress on the server.
      let release!: () => void;
      async function* held(fail: boolean): AsyncGenerator<Uint8Array> {
        const gate = new Promise<void>((r) => (release = r));
        yield data.subarray(0, 1_200_000);
        await gate;
        if (fail) throw new Error('the source failed');
        yield data.subarray(1_200_000);
      }
      const first = s.client.sendBigStream(FilesCommand.upload, held(false), { info: info(), size: data.length });
      await partialReaches(HASH_BLOCK);
      const other = await s.newClient();
      assert.equal(await remoteCode(other.sendBigStream(FilesCommand.upload, data, { info: info() })), 'ZS_FILES_BUSY', 'a second upload of the same name');
      // held.bin reserves its 1,500,000 bytes: 1,100,000 more do not fit in the quota of 2,000,000.
      const src = join(s.dir, 'q.bin');
      await randomFile(src, 1_100_000);
      assert.equal(await remoteCode(filesClient(other).upload(src, 'other.bin')), 'ZS_FILES_QUOTA', 'the upload in progress holds its size');
      release();
      assert.equal((await first).readInt64(), BigInt(data.length));
      assert.deepEqual(await readFile(join(s.root, 'held.bin')), data);
      assert.equal(await remoteCode(filesClient(other).upload(src, 'other.bin')), 'ZS_FILES_QUOTA', 'the finished file holds its size');
      // An upload cut after its first MiB was written leaves a partial that still counts...
      await s.files.delete('held.bin');
      const cut = s.client.sendBigStream(FilesCommand.upload, held(true), { info: info(), size: data.length });
      await partialReaches(HASH_BLOCK);
      release();
      await assert.rejects(cut, { code: 'ZS_STREAM_ABORTED' });
      assert.equal(await remoteCode(filesClient(other).upload(src, 'other.bin')), 'ZS_FILES_QUOTA', 'a partial holds its bytes');
      // ...until an upload of that name that does not resume it (other bytes) replaces it: 1,100,000 in use.
      await s.files.upload(src, 'held.bin');
      await assert.rejects(stat(partial), { code: 'ENOENT' });
      const small = join(s.dir, 'small.bin');
      await randomFile(small, 800_000);
      await filesClient(other).upload(small, 'other.bin');
    } finally {
      await s.close();
    }
  });

  it('maxFileSize refuses a bigger upload before any byte is written', async () => {
    const s = await setup({ maxFileSize: 1000 });
    try {
      const src = join(s.dir, 'big.bin');
      await randomFile(src, 1001);
      assert.equal(await remoteCode(s.files.upload(src, 'big.bin')), 'ZS_FILES_TOO_LARGE');
      await assert.rejects(stat(join(s.root, '.zspart.big.bin')), { code: 'ENOENT' });
    } finally {
      await s.close();
    }
  });

  it('maxTransfersPerPeer, maxOpenFiles, maxRead, handleTimeout, and handles closed on disconnect', async () => {
    const s = await setup({ maxTransfersPerPeer: 2, maxOpenFiles: 3, maxRead: 1024, handleTimeout: 150 });
    try {
      await writeFile(join(s.root, 'f'), Buffer.alloc(5000, 3));
      const openF = (c = s.client) => c.call(FilesCommand.open, new DataFrame().writeString('f')).then((df) => df.readUInt32());
      const h1 = await openF();
      await openF();
      assert.equal(await remoteCode(openF()), 'ZS_FILES_BUSY', 'a third transfer on one connection');
      assert.equal(await remoteCode(s.files.hash('f', 0, 5000)), 'ZS_FILES_BUSY', 'hashing takes a transfer slot too');
      assert.equal(await remoteCode(s.files.stat('f', { hash: 'md5' })), 'ZS_FILES_BUSY');
      const other = await s.newClient();
      await openF(other);
      assert.equal(s.service.openFiles, 3);
      assert.equal(await remoteCode(openF(other)), 'ZS_FILES_BUSY', 'maxOpenFiles over all peers');
      const read = (h: number, len: number) => s.client.call(FilesCommand.read, new DataFrame().writeUInt32(h).writeInt64(0).writeUInt32(len));
      assert.equal(await remoteCode(read(h1, 1025)), 'ZS_HANDLER', 'a read above maxRead');
      assert.equal((await read(h1, 1024)).readBytes().length, 1024);
      await other.close();
      const deadline = Date.now() + 2000;
      while ((s.service.openFiles as number) !== 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      assert.equal(s.service.openFiles, 2, 'the disconnected peer\'s handle was closed');
      await new Promise((r) => setTimeout(r, 400));
      assert.equal(await remoteCode(read(h1, 10)), 'ZS_FILES_HANDLE', 'an idle handle expired');
      assert.equal(s.service.openFiles, 0);
    } finally {
      await s.close();
    }
  });

  it('maxReadsInProgress: reads beyond it wait their turn over all peers, and all are answered', async () => {
    // The thread-pool read path (reads by sendfile hold no buffer and never wait).
    const s = await setup({ maxReadsInProgress: 2, sendfile: false });
    try {
      const data = await randomFile(join(s.root, 'r.bin'), 40 * 16_384);
      const other = await s.newClient();
      const reads = [s.client, other].flatMap((c) => {
        return [0, 1].map(async (half) => {
          const h = (await c.call(FilesCommand.open, new DataFrame().writeString('r.bin'))).readUInt32();
          return Promise.all(
            Array.from({ length: 20 }, (_, i) => {
              const at = (half * 20 + i) * 16_384;
              return c.call(FilesCommand.read, new DataFrame().writeUInt32(h).writeInt64(at).writeUInt32(16_384)).then((df) => ({ at, bytes: df.readBytes() }));
            }),
          );
        });
      });
      let peak = 0;
      let waited = 0;
      let done = false;
      const all = Promise.all(reads).finally(() => (done = true));
      while (!done) {
        peak = Math.max(peak, s.service.readsInProgress);
        waited = Math.max(waited, s.service.readsWaiting);
        await new Promise((r) => setImmediate(r));
      }
      for (const { at, bytes } of (await all).flat()) assert.deepEqual(Buffer.from(bytes), data.subarray(at, at + 16_384));
      assert.ok(peak <= 2, `at most 2 reads ran at once (saw ${peak})`);
      assert.ok(waited > 0, 'some reads waited for a place');
      assert.equal(s.service.readsInProgress, 0);
      assert.equal(s.service.readsWaiting, 0);
    } finally {
      await s.close();
    }
  });

  it('maxListEntries cuts a listing and says so', async () => {
    const s = await setup({ maxListEntries: 5 });
    try {
      for (let i = 0; i < 8; i++) await writeFile(join(s.root, `f${i}`), '');
      const { entries, truncated } = await s.files.list('');
      assert.equal(entries.length, 5);
      assert.equal(truncated, true);
    } finally {
      await s.close();
    }
  });

  it('perUser gives each user a root of their own and refuses peers without one', async () => {
    const s = await setup({ perUser: (peer) => (peer.userData as { user?: string } | undefined)?.user });
    try {
      const src = join(s.dir, 'u.txt');
      await writeFile(src, 'mine');
      assert.equal(await remoteCode(s.files.list('')), 'ZS_FILES_DENIED');
      const peers = [...s.server.peers()];
      peers[0]!.userData = { user: 'alice' };
      await s.files.upload(src, 'u.txt');
      const bob = await s.newClient();
      const deadline = Date.now() + 2000;
      while (s.server.count < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5)); // the server may see the connection a moment later
      for (const p of s.server.peers()) if (p !== peers[0]) p.userData = { user: 'bob' };
      assert.deepEqual((await filesClient(bob).list('')).entries, []);
      assert.equal(await readFile(join(s.root, 'alice', 'u.txt'), 'utf8'), 'mine');
      for (const p of s.server.peers()) if (p !== peers[0]) p.userData = { user: '..' };
      assert.equal(await remoteCode(filesClient(bob).list('')), 'ZS_FILES_PATH');
    } finally {
      await s.close();
    }
  });
});
