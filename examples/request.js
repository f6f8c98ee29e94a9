// Send one SCGI request and print the response, like `curl -i`:
//   node examples/request.js ADDRESS [PATH] [BODY]
import { request } from 'scgi/client';

const [address = (await import('scgi')).defaultAddress(), uri = '/', body] = process.argv.slice(2);
const res = await request(address, { uri, body, method: body === undefined ? 'GET' : 'POST' });
process.stdout.write(`Status: ${res.status} ${res.statusText}\n`);
for (const [name, value] of res.rawHeaders) process.stdout.write(`${name}: ${value}\n`);
process.stdout.write('\n');
process.stdout.write(res.body);
