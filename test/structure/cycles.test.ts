/**
 * No import cycles in lib/: every file can be read knowing only the files it
 * imports. The graph counts `import type` too (import-graph.ts says why).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { cycles, importGraph } from './import-graph.js';

const root = fileURLToPath(new URL('../..', import.meta.url));

describe('import graph of lib/', () => {
  const graph = importGraph(root);

  it('reads every file of lib/ and resolves its imports', () => {
    assert.ok(graph.size > 100, `only ${graph.size} files found under lib/`);
    assert.ok(graph.get('lib/index.ts')!.includes('lib/framework/server.ts'));
  });

  it('has no import cycle (type-only imports included)', () => {
    const found = cycles(graph).map((c) => c.join(' '));
    assert.deepEqual(found, [], `import cycles in lib/:\n${found.join('\n')}`);
  });

  it('finds a cycle when there is one (the check itself can fail)', () => {
    const g = new Map([
      ['a', ['b']],
      ['b', ['c']],
      ['c', ['a']],
      ['d', ['a']],
      ['e', ['e']],
    ]);
    assert.deepEqual(cycles(g), [['a', 'b', 'c'], ['e']]);
  });
});
