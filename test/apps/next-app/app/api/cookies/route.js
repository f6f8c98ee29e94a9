export const dynamic = 'force-dynamic';

export function GET() {
  const headers = new Headers({ 'content-type': 'text/plain' });
  headers.append('set-cookie', 'a=1; Path=/');
  headers.append('set-cookie', 'b=2; Path=/; HttpOnly');
  return new Response('two cookies', { headers });
}
