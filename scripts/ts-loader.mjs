// Run TypeScript files on Node 20 (which has no --experimental-strip-types):
//   node --import ./scripts/ts-loader.mjs bench/parser.bench.ts
// Registers module hooks that transpile `.ts` files with the project's own
// `typescript` (a devDependency; no type checking, imports keep their `.ts`).
import { register } from 'node:module';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { isMainThread } from 'node:worker_threads';

let ts;

/** Module hook: load `.ts` files as transpiled ES modules. */
export async function load(url, context, nextLoad) {
  if (!url.startsWith('file:') || !url.endsWith('.ts')) return nextLoad(url, context);
  ts ??= (await import('typescript')).default;
  const fileName = fileURLToPath(url);
  const { outputText } = ts.transpileModule(await readFile(fileName, 'utf8'), {
    fileName,
    compilerOptions: {
      module: ts.ModuleKind.ESNext,
      target: ts.ScriptTarget.ES2022,
      verbatimModuleSyntax: true,
      sourceMap: false,
      inlineSourceMap: true,
    },
  });
  return { format: 'module', source: outputText, shortCircuit: true };
}

// Imported with --import (main thread): register this file as the hooks module.
// Loaded again as the hooks module (on the loader thread): only export `load`.
if (isMainThread) register(import.meta.url);
