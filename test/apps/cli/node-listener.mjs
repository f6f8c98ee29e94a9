// A plain (req, res) listener: cannot be told from an SCGI handler.
export default (req, res) => {
  res.setHeader('Content-Type', 'text/plain');
  res.end(`listener ${req.method} ${req.url}\n`);
};
