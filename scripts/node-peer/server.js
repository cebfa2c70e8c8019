// The Node peer, the other side of a side-by-side benchmark of menu hops (its URL goes to the
// benchmark driver as --other-url): the Jasho send journey on
// ussd-menu-builder 1.2 (a state-machine USSD library), Node's own `http` module, cluster
// workers, sessions in Redis through node-redis 4 with the same two-minute TTL as ours.
// Only this glue is ours; run.sh assembles the libraries from fetched copies outside the
// repository (they are never committed).
'use strict';
const cluster = require('node:cluster');
const http = require('node:http');
const { URLSearchParams } = require('node:url');

const PORT = Number(process.env.PORT || 9201);
const WORKERS = Number(process.env.WORKERS || 2);
const REDIS_URL = process.env.REDIS_URL || 'redis://127.0.0.1:6392/0';
const TTL = 120;

if (cluster.isPrimary) {
  for (let i = 0; i < WORKERS; i++) cluster.fork();
  cluster.on('exit', (w, code) => { console.error(`worker ${w.process.pid} exited ${code}`); process.exit(1); });
} else {
  const UssdMenu = require('ussd-menu-builder');
  const { createClient } = require('redis');
  const redis = createClient({ url: REDIS_URL });
  redis.on('error', (e) => console.error('redis', e.message));

  // One menu per request: a UssdMenu keeps the request's args on itself, so a shared one
  // would mix concurrent sessions up while a Redis call is in flight.
  function jasho() {
    const menu = new UssdMenu();
    menu.sessionConfig({
      start: (id) => redis.expire(`peer:${id}`, TTL),
      end: (id) => redis.del(`peer:${id}`),
      set: async (id, key, value) => { await redis.hSet(`peer:${id}`, key, value); await redis.expire(`peer:${id}`, TTL); },
      get: (id, key) => redis.hGet(`peer:${id}`, key),
    });
    menu.startState({
      run: () => menu.con('Welcome to Jasho\n1. Check Balance\n2. Deposit\n3. Withdraw\n4. Send Money\n5. Savings'),
      next: { 1: 'balance', 2: 'deposit', 3: 'withdraw', 4: 'send.recipient', 5: 'savings' },
    });
    menu.state('balance', { run: () => menu.end('Your balance is KES 0.') });
    menu.state('deposit', { run: () => menu.end('Deposit is not available yet.') });
    menu.state('withdraw', { run: () => menu.end('Withdraw is not available yet.') });
    menu.state('savings', { run: () => menu.end('Savings is not available yet.') });
    menu.state('send.recipient', { run: () => menu.con('Enter phone number'), next: { '*\\d+': 'send.amount' } });
    menu.state('send.amount', {
      run: async () => { await menu.session.set('recipient', menu.val); menu.con('Enter amount'); },
      next: { '*\\d+': 'send.pin' },
    });
    menu.state('send.pin', {
      run: async () => { await menu.session.set('amount', menu.val); menu.con('Enter PIN'); },
      next: { '*\\d+': 'send.done' },
    });
    menu.state('send.done', {
      run: async () => {
        await menu.session.set('pin', menu.val);
        const [amount, recipient] = await Promise.all([menu.session.get('amount'), menu.session.get('recipient')]);
        menu.end(`Sent KES ${amount} to ${recipient}.`);
      },
    });
    return menu;
  }

  const server = http.createServer((req, res) => {
    if (req.method === 'GET' && req.url === '/healthz') { res.end('ok'); return; }
    if (req.method !== 'POST') { res.statusCode = 405; res.end(); return; }
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c) => { body += c; if (body.length > 8192) req.destroy(); });
    req.on('end', () => {
      const f = new URLSearchParams(body);
      const args = { sessionId: f.get('sessionId'), serviceCode: f.get('serviceCode'), phoneNumber: f.get('phoneNumber'), text: f.get('text') || '' };
      if (!args.sessionId || !args.phoneNumber) { res.statusCode = 400; res.end('bad request'); return; }
      jasho().run(args, (reply) => { res.setHeader('Content-Type', 'text/plain'); res.end(reply); });
    });
  });
  redis.connect().then(() => server.listen(PORT, '127.0.0.1'));
}
