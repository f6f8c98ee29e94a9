export const dynamic = 'force-dynamic';

export async function GET(request) {
  const url = new URL(request.url);
  return Response.json({ method: 'GET', path: url.pathname, q: url.searchParams.get('q'), ua: request.headers.get('user-agent') });
}

export async function POST(request) {
  const body = await request.text();
  return Response.json({ method: 'POST', length: body.length, body }, { status: 201 });
}
