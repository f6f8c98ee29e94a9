// A fetch handler with one declared parameter.
export default (request) => new Response(`fetch1 ${new URL(request.url).pathname}\n`);
