// Bootstrap tokens: hashed at rest, picked up when the file changes, and a broken file keeps the last
// good tokens instead of locking every node out.
import t from 'tap';
import { appendFileSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BootstrapTokenAuthenticator, createNodeToken } from '../../ca/node-tokens.js';
import { removeDir } from '../helpers/ca.js';

t.test('tokens authenticate their node; the file holds only hashes', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-tokens-'));
  t.teardown(() => removeDir(dir));
  const file = join(dir, 'node-tokens');
  const auth = new BootstrapTokenAuthenticator(file);
  await t.rejects(auth.authenticate('x', 'peer'), /unknown bearer token/, 'no file: nobody gets in');
  const t1 = createNodeToken(file, 'node-1');
  t.same(await auth.authenticate(t1, 'peer'), { kind: 'node', nodeName: 'node-1' });
  t.notMatch(readFileSync(file, 'utf8'), t1, 'the token itself is not stored');
  const t2 = createNodeToken(file, 'node-2');
  t.same(
    await auth.authenticate(t2, 'peer'),
    { kind: 'node', nodeName: 'node-2' },
    'a new token works at once',
  );
  await t.rejects(auth.authenticate(undefined, 'peer'), /no bearer token/);
  await t.rejects(auth.authenticate('y'.repeat(5000), 'peer'), /too long/);
  t.throws(() => createNodeToken(file, 'Bad_Node'), /not a DNS subdomain/);

  appendFileSync(file, 'this line is broken\n');
  t.same(
    await auth.authenticate(t1, 'peer'),
    { kind: 'node', nodeName: 'node-1' },
    'a broken file keeps the last good tokens',
  );
});
