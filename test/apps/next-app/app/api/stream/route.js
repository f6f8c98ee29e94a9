export const dynamic = 'force-dynamic';

export function GET() {
  const enc = new TextEncoder();
  const body = new ReadableStream({
    async start(c) {
      for (let i = 0; i < 4; i++) {
        c.enqueue(enc.encode(`part ${i}\n`));
        await new Promise((r) => setTimeout(r, 10));
      }
      c.close();
    },
  });
  return new Response(body, { headers: { 'content-type': 'text/plain; charset=utf-8' } });
}
