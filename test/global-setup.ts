// Tests that spawn `node` on fixture scripts import the built package
// ('scgi' resolves to dist/ through package.json exports): build it once.
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export default function setup(): void {
  const root = fileURLToPath(new URL('..', import.meta.url));
  execFileSync(process.execPath, [require_tsc(root), '-p', 'tsconfig.build.json'], { cwd: root, stdio: 'inherit' });
}

function require_tsc(root: string): string {
  return `${root}node_modules/typescript/bin/tsc`;
}
