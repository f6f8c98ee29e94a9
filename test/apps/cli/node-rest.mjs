// A Node listener that takes its arguments as a rest parameter (as Astro's
// node handler does): its length is 0, like a fetch handler's with none.
export default async (...args) => {
  const [req, res] = args;
  res.end(`rest ${req.method} ${req.url}\n`);
};
