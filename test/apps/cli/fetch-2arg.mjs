// A fetch handler with an env argument (request, env): two arguments, like (req, res).
export default async (request, env) => new Response(`fetch2 ${new URL(request.url).pathname} ${typeof env}\n`);
