// run-tests: alone (it measures the server's RSS and an honest client's round trip: another test file
// on the same cores would be measured too; scripts/run-tests.mjs runs no other file beside it)
/**
 * The attacks of issue 13 at small scale (bench/attacks.ts --small), each
 * against a fresh server process with the Server of `zserver serve`, asserting
 * what the issue asks for: the server's RSS grows less than 256 MB, the
 * offending peer is closed with the right reason (or held back where that is
 * the documented outcome), an honest client's echo round trip stays bounded
 * (500 ms here, generous for a shared 2-core machine; the bench uses the
 * issue's 100 ms) and honest clients keep working afterwards.
 *
 * Server options the attacks set so that a limit is reached within seconds:
 * frameTimeout 4 s (c, c2), idleTimeout 4 s with keepalive 1.5 s (d), and a
 * per-IP cap of 256 (e). Everything else is the endpoint's default.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { attacks } from '../../bench/attack/attacks.js';
import { runAttack, type AttackResult, type TransportChoice } from '../../bench/attack/run.js';

const MB = 1024 * 1024;
const GROWTH_LIMIT = 256 * MB;
const RTT_LIMIT = 500;

async function attack(id: string, transport: TransportChoice = 'native'): Promise<AttackResult> {
  const a = attacks.find((x) => x.id === id);
  assert.ok(a, `no attack ${id}`);
  // settleMs: the honest check 500 ms after the attack rather than the bench's 1 s (the RSS read
  // then, "after", is the bench's figure; nothing here asserts it).
  return runAttack(a, { transport, scale: 'small', rssCap: 1024 * MB, growthLimit: GROWTH_LIMIT, rttLimit: RTT_LIMIT, settleMs: 500 });
}

/** What every attack must leave true: bounded memory, a live server, honest clients served in time. */
function assertServerHeld(r: AttackResult): void {
  const what = `attack ${r.attack} (${r.transport}): ${r.note}`;
  assert.equal(r.killedAtCap, false, `${what}: the server's RSS passed 1 GB`);
  assert.equal(r.serverDied, false, `${what}: the server process died (${r.serverExit})`);
  assert.ok(r.growthMB * MB < GROWTH_LIMIT, `${what}: RSS grew ${r.growthMB.toFixed(0)} MB`);
  assert.ok(r.honestOk, `${what}: honest client broken: ${r.honestWhy}`);
  assert.ok(r.honestSamples > 20, `${what}: only ${r.honestSamples} honest round trips measured`);
  assert.ok(r.honestMax < RTT_LIMIT, `${what}: honest echo took up to ${r.honestMax.toFixed(0)} ms`);
}

/** Every offender was closed by the server, and every close the server reported for them has one of `reasons`. */
function assertClosedWith(r: AttackResult, reasons: string[]): void {
  const what = `attack ${r.attack} (${r.transport}): ${r.note}`;
  assert.ok(r.offenders > 0, `${what}: no offender connected`);
  assert.equal(r.offendersClosed, r.offenders, `${what}: ${r.offendersClosed}/${r.offenders} offenders closed`);
  const given = Object.keys(r.serverReasons);
  assert.ok(given.length > 0, `${what}: the server reported no close reason`);
  for (const g of given) assert.ok(reasons.includes(g), `${what}: closed with '${g}', expected ${reasons.join(' or ')}`);
}

const opts = { timeout: 90_000 };

describe('issue 13 attacks (small scale)', () => {
  for (const transport of ['native', 'node-net'] as const) {
    it(`(a) a client that never reads is closed with 'slow-consumer' or held back (${transport})`, opts, async () => {
      const r = await attack('a', transport);
      assertServerHeld(r);
      const closedSlow = r.offendersClosed === r.offenders && (r.serverReasons['slow-consumer'] ?? 0) === r.offenders;
      assert.ok(closedSlow || r.heldBack === true, `attack a: neither closed with slow-consumer nor held back: ${r.note}`);
    });

    it(`(b) compressed frames to an endpoint that did not enable compression close the peer with 'protocol' (${transport})`, opts, async () => {
      const r = await attack('b', transport);
      assertServerHeld(r);
      assertClosedWith(r, ['protocol']);
    });
  }

  it("(c) a frame declared above maxFrameSize closes the peer with 'oversize'", opts, async () => {
    const r = await attack('c');
    assertServerHeld(r);
    assertClosedWith(r, ['oversize']);
  });

  it("(c2) a frame that does not complete within frameTimeout closes the peer with 'timeout'", opts, async () => {
    const r = await attack('c2');
    assertServerHeld(r);
    assertClosedWith(r, ['timeout']);
  });

  it("(d) idle connections are closed with 'timeout'", opts, async () => {
    const r = await attack('d');
    assertServerHeld(r);
    assertClosedWith(r, ['timeout']);
  });

  it('(e) a connection flood from one address is cut at the per-IP cap', opts, async () => {
    const r = await attack('e');
    assertServerHeld(r);
    assert.equal(r.heldBack, true, `attack e: more than the cap stayed open: ${r.note}`);
  });

  it('(f) open big streams and unfinished complete buffers are bounded per peer', opts, async () => {
    const r = await attack('f');
    assertServerHeld(r);
    assert.ok(r.offendersClosed === r.offenders || r.heldBack === true, `attack f: every stream accepted and the peer left open: ${r.note}`);
  });

  it("(g) the 5-byte method-none payload declaring 16 MiB closes the peer with 'protocol'", opts, async () => {
    const r = await attack('g');
    assertServerHeld(r);
    assertClosedWith(r, ['protocol']);
  });

  it('(h) attacker-chosen command names are escaped in the log, and their log lines rate-limited', opts, async () => {
    const r = await attack('h');
    assertServerHeld(r);
    assert.ok(r.check?.ok, r.check?.what ?? 'no log check');
  });

  it('(i) a WebSocket upgrade with a foreign Origin is refused', opts, async () => {
    const r = await attack('i');
    assertServerHeld(r);
    assert.ok(r.check?.ok, r.check?.what ?? 'no origin check');
  });
});
