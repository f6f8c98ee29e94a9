// An object with fetch (as Hono, itty-router, Bun-style exports).
export default { fetch: (request) => new Response(`object ${new URL(request.url).pathname}\n`) };
