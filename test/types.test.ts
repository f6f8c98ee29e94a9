// The published declarations, as a user's project sees them: `dist/*.d.ts`
// (built by test/global-setup.ts from tsconfig.build.json) installed as
// node_modules/scgi in a temp project with the strictest settings a
// `module: nodenext` user may have, `skipLibCheck: false` included, and a
// consumer file that imports every entry point of package.json `exports`.
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { tempDir } from './helpers.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const DIST = join(ROOT, 'dist');
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { exports: Record<string, unknown> };

function declarationFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...declarationFiles(p));
    else if (entry.name.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

const CONSUMER = `
import { serve, readHeader, defaultAddress, parserInfo, inject, ScgiError, ScgiHeaders, ScgiClient } from 'scgi';
import type { ServeOptions, ScgiServer, Handler, ScgiStats, HeaderEncoding, ScgiErrorCode, ReadHeaderOptions, ParserInfo, OutgoingHeaders, InjectOptions, TransportSocket } from 'scgi';
import { fromNodeListener } from 'scgi/http';
import { fromFetch } from 'scgi/fetch';
import { request, type ClientRequest, type ClientResponse } from 'scgi/client';

const handler: Handler = async (headers: ScgiHeaders, client: ScgiClient) => {
  let size = 0;
  for await (const chunk of client) size += chunk.length;
  const peer: TransportSocket = client.socket;
  const h: OutgoingHeaders = { 'Content-Type': 'text/plain', 'X-Peer': String(peer.remoteAddress) };
  client.writeHead(200, h);
  client.end(\`\${headers.get('REQUEST_URI')} \${size}\\n\`);
};
const options: ServeOptions = { address: defaultAddress(), maxBodySize: 1024 };
const server: ScgiServer = await serve(handler, options);
const stats: Readonly<ScgiStats> = server.stats;
const encoding: HeaderEncoding = 'latin1';
const readOptions: ReadHeaderOptions = { headerEncoding: encoding };
export const parsed: Promise<{ headers: ScgiHeaders; body: NodeJS.ReadableStream }> = readHeader(process.stdin, readOptions);
const info: ParserInfo = parserInfo;
const code: ScgiErrorCode = new ScgiError('ERR_SCGI_HANDLER', 'x').code;
const injectOptions: InjectOptions = { strict: true };
const req: ClientRequest = { method: 'POST', uri: '/', body: 'x' };
const injected: ClientResponse = await inject(fromFetch({ fetch: () => new Response('hi') }), req, injectOptions);
const remote: ClientResponse = await request(defaultAddress(), req);
export const used = [fromNodeListener((_req, res) => res.end()), stats, info, code, injected.status, remote.body];
await server.close();
`;

describe('published types', () => {
  const dir = tempDir('scgi-types-');
  afterAll(() => dir.cleanup());

  it("'scgi' exports what the README's API section documents, and nothing else", async () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const api = readme.slice(readme.indexOf('## API'));
    const values = /import \{ ([^}]+) \} from 'scgi';/
      .exec(api)![1]!
      .split(',')
      .map((n) => n.trim());
    const typesText = /Types: ([\s\S]*?) from `scgi`/.exec(api)![1]!;
    const types = [...typesText.matchAll(/`(\w+)`/g)].map((m) => m[1]!);
    const runtime = Object.keys(await import(join(DIST, 'index.js')));
    expect(runtime.sort()).toEqual([...values].sort());
    const dts = readFileSync(join(DIST, 'index.d.ts'), 'utf8');
    const declared = [...dts.matchAll(/export (?:type )?\{([^}]*)\}/g)].flatMap((m) => m[1]!.split(',').map((n) => n.trim().replace(/^type /, '')));
    expect(declared.sort()).toEqual([...values, ...types].sort());
  });

  it('ship no @internal declaration', () => {
    const files = declarationFiles(DIST);
    expect(files.length).toBeGreaterThan(5);
    for (const file of files) {
      const text = readFileSync(file, 'utf8');
      expect(text, file).not.toContain('@internal');
      expect(text, file).not.toMatch(/\b_drained\b|\b_resetHead\b|class Connection\b/);
    }
  });

  it('type-check in a strict nodenext project with skipLibCheck false, every entry point imported, every .d.ts included', () => {
    const project = dir.path;
    const installed = join(project, 'node_modules', 'scgi');
    mkdirSync(installed, { recursive: true });
    cpSync(DIST, join(installed, 'dist'), { recursive: true });
    writeFileSync(join(installed, 'package.json'), JSON.stringify({ name: 'scgi', type: 'module', exports: pkg.exports }));
    mkdirSync(join(project, 'node_modules', '@types'));
    symlinkSync(join(ROOT, 'node_modules', '@types', 'node'), join(project, 'node_modules', '@types', 'node'));
    // every entry point of package.json exports (except ./package.json) is imported by the consumer
    for (const entry of Object.keys(pkg.exports).filter((e) => e !== './package.json')) {
      expect(CONSUMER).toContain(`from '${entry === '.' ? 'scgi' : `scgi/${entry.slice(2)}`}'`);
    }
    writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'consumer', type: 'module', private: true }));
    writeFileSync(join(project, 'index.ts'), CONSUMER);
    writeFileSync(
      join(project, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          module: 'nodenext',
          moduleResolution: 'nodenext',
          target: 'esnext',
          lib: ['esnext'],
          types: ['node'],
          strict: true,
          skipLibCheck: false,
          noEmit: true,
        },
        // the consumer, and every declaration file shipped (none may refer to a stripped one)
        files: ['index.ts', ...declarationFiles(join(installed, 'dist'))],
      }),
    );
    let output = '';
    try {
      execFileSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', project], { encoding: 'utf8' });
    } catch (err) {
      output = String((err as { stdout?: string }).stdout ?? err);
    }
    expect(output).toBe('');
  }, 120_000);
});
