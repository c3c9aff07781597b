/**
 * The published declarations (tsconfig.build.json, `stripInternal` on) show
 * no `@internal` name: whatever one file of the library uses of another is
 * either public and documented, or invisible to users. And what is left
 * type-checks on its own (a public signature that names a stripped type would
 * not).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { sourceFiles } from './import-graph.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');

function declarationFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const full = join(dir, name);
    if (statSync(full).isDirectory()) out.push(...declarationFiles(full));
    else if (name.endsWith('.d.ts')) out.push(full);
  }
  return out;
}

/** `Container.member` (or `name` at the top level) of a declaration, null for one without a name. */
function qualifiedName(node: ts.Node): string | null {
  const named = node as ts.Node & { name?: ts.Node };
  let name: string | null = null;
  if (ts.isConstructorDeclaration(node)) name = 'constructor';
  else if (named.name && (ts.isIdentifier(named.name) || ts.isPrivateIdentifier(named.name) || ts.isStringLiteral(named.name))) name = named.name.text;
  else if (ts.isVariableStatement(node)) name = node.declarationList.declarations.map((d) => (ts.isIdentifier(d.name) ? d.name.text : '')).join(',');
  if (name === null) return null;
  const parent = node.parent as ts.Node & { name?: ts.Identifier };
  if ((ts.isClassLike(parent) || ts.isInterfaceDeclaration(parent)) && parent.name) return `${parent.name.text}.${name}`;
  return name;
}

/** Every declaration of `file`, as `path relative to lib/ (no extension)#qualified name`, with whether it is tagged @internal. */
function declarations(file: string, base: string, text: string): { key: string; internal: boolean }[] {
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.ES2022, true);
  const module = relative(base, file).replace(/(\.d)?\.ts$/, '');
  const out: { key: string; internal: boolean }[] = [];
  const visit = (node: ts.Node): void => {
    if (ts.isClassElement(node) || ts.isTypeElement(node) || ts.isFunctionDeclaration(node) || ts.isVariableStatement(node) || ts.isClassDeclaration(node) || ts.isInterfaceDeclaration(node) || ts.isTypeAliasDeclaration(node)) {
      const q = qualifiedName(node);
      if (q !== null) out.push({ key: `${module}#${q}`, internal: ts.getJSDocTags(node).some((t) => t.tagName.text === 'internal') });
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return out;
}

describe('published declarations', { timeout: 180_000 }, () => {
  // Under the package (build/ is ignored by git), so the declarations find its node_modules as a user's would.
  const out = mkdtempSync(join(root, 'build', 'dts-check-'));
  after(() => rmSync(out, { recursive: true, force: true }));

  it('tsconfig.build.json strips @internal', () => {
    const config = JSON.parse(readFileSync(join(root, 'tsconfig.build.json'), 'utf8')) as { compilerOptions: { stripInternal?: boolean } };
    assert.equal(config.compilerOptions.stripInternal, true);
  });

  it('no @internal declaration of lib/ appears in dist/**/*.d.ts, and the declarations type-check alone', () => {
    const internal = new Set<string>();
    for (const file of sourceFiles(join(root, 'lib'))) {
      for (const d of declarations(file, join(root, 'lib'), readFileSync(file, 'utf8'))) if (d.internal) internal.add(d.key);
    }
    // --noCheck: the same declarations (compared byte for byte, TypeScript 5.9) in half the time;
    // type errors of lib/ are `npm run typecheck`'s to find, the declarations are checked below.
    execFileSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.build.json'), '--emitDeclarationOnly', '--declarationMap', 'false', '--noCheck', '--outDir', out], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const files = declarationFiles(join(out, 'lib'));
    assert.ok(files.some((f) => f.endsWith(join('lib', 'index.d.ts'))), 'the build wrote lib/index.d.ts');
    const leaks: string[] = [];
    for (const file of files) {
      const text = readFileSync(file, 'utf8');
      if (text.includes('@internal')) leaks.push(`${relative(out, file)}: an @internal comment`);
      for (const d of declarations(file, join(out, 'lib'), text)) if (internal.has(d.key)) leaks.push(d.key);
    }
    assert.deepEqual(leaks, [], `@internal names in the published declarations:\n${leaks.join('\n')}`);

    // A user's compiler reads these files with skipLibCheck off: what was stripped must not be missed.
    const consumer = join(out, 'tsconfig.json');
    writeFileSync(
      consumer,
      JSON.stringify({
        compilerOptions: { strict: true, noEmit: true, skipLibCheck: false, module: 'NodeNext', moduleResolution: 'NodeNext', target: 'ES2022', lib: ['ES2022', 'DOM'], types: ['node'], typeRoots: [join(root, 'node_modules', '@types')] },
        files: [join(out, 'lib', 'index.d.ts'), join(out, 'lib', 'browser.d.ts')],
      }),
    );
    try {
      execFileSync(process.execPath, [tsc, '-p', consumer], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
    } catch (err) {
      assert.fail(`the published declarations do not type-check:\n${(err as { stdout: string }).stdout}`);
    }
  });
});
