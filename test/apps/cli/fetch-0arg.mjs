// A fetch handler with no argument.
export default () => new Response('fetch0\n');
