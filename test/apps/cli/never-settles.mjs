// An app whose top-level await never settles (it waits for something that never comes).
await new Promise(() => {});
export default (_req, res) => res.end('never\n');
