// The SOCKS5 handshake parser: pure, bounded, refuses what it does not do.
import t from 'tap';
import { parseGreeting, parseRequest, REPLY } from '../../agent/socks5.js';

t.test('greeting', (t) => {
  t.same(parseGreeting(Buffer.from([5])), { kind: 'need-more' });
  t.same(parseGreeting(Buffer.from([5, 2, 2])), { kind: 'need-more' });
  t.same(parseGreeting(Buffer.from([5, 2, 2, 0])), { kind: 'greeting', consumed: 4, noAuth: true });
  t.same(parseGreeting(Buffer.from([5, 1, 2])), { kind: 'greeting', consumed: 3, noAuth: false });
  t.match(parseGreeting(Buffer.from([4, 1, 0])), { kind: 'error' }, 'SOCKS4 refused');
  t.end();
});

t.test('request', (t) => {
  const v4 = Buffer.from([5, 1, 0, 1, 10, 1, 2, 10, 0x1f, 0x90]);
  t.same(parseRequest(v4), { kind: 'connect', consumed: 10, dst: { ip: '10.1.2.10', port: 8080 } });
  t.same(parseRequest(v4.subarray(0, 7)), { kind: 'need-more' });
  const v6 = Buffer.concat([
    Buffer.from([5, 1, 0, 4]),
    Buffer.from('fd000000000000000000000000000001', 'hex'),
    Buffer.from([0, 80]),
  ]);
  t.same(parseRequest(v6), { kind: 'connect', consumed: 22, dst: { ip: 'fd00::1', port: 80 } });
  t.match(parseRequest(Buffer.from([5, 1, 0, 3, 3, 0x61, 0x62, 0x63, 0, 80])), {
    kind: 'error',
    reply: REPLY.addressTypeNotSupported,
  });
  t.match(
    parseRequest(Buffer.from([5, 2, 0, 1, 1, 2, 3, 4, 0, 80])),
    { kind: 'error', reply: REPLY.commandNotSupported },
    'BIND refused',
  );
  t.match(parseRequest(Buffer.from([5, 1, 0, 1, 1, 2, 3, 4, 0, 0])), { kind: 'error' }, 'port 0 refused');
  t.end();
});
