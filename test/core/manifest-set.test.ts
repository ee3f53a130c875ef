// core/sources/manifest-set.ts: ownership across files and the minimal batch between states.
import t from 'tap';
import { formatRejection } from '../../core/convert/index.js';
import { readManifestFile } from '../../core/sources/manifest-file.js';
import { isEmptyBatch, ManifestSet } from '../../core/sources/manifest-set.js';

const POD = (name: string, ip: string) =>
  `apiVersion: v1\nkind: Pod\nmetadata: { name: ${name}, namespace: shop }\nstatus: { podIP: "${ip}" }\n`;

function setFile(set: ManifestSet, file: string, text: string): void {
  set.setFile(file, readManifestFile(file, text, set.contents(file)));
}

t.test('batches carry only differences', async (t) => {
  const set = new ManifestSet();
  setFile(set, 'm/a.yaml', [POD('web-0', '10.0.0.1'), POD('web-1', '10.0.0.2')].join('---\n'));
  const first = set.takeBatch();
  t.equal(first.upserts.length, 2);
  t.ok(isEmptyBatch(set.takeBatch()), 'nothing changed, nothing to send');

  setFile(set, 'm/a.yaml', [POD('web-0', '10.0.0.1'), POD('web-1', '10.0.0.3')].join('---\n'));
  const second = set.takeBatch();
  t.same(
    second.upserts.map((r) => r.name),
    ['web-1'],
    're-reading a file re-sends only the object that changed',
  );

  setFile(set, 'm/a.yaml', POD('web-0', '10.0.0.1'));
  t.same(
    set.takeBatch().deletes,
    [{ kind: 'Pod', namespace: 'shop', name: 'web-1' }],
    'an object gone from its file is deleted',
  );

  set.removeFile('m/a.yaml');
  t.same(
    set.takeBatch().deletes,
    [{ kind: 'Pod', namespace: 'shop', name: 'web-0' }],
    'a removed file deletes its objects',
  );
});

t.test('the same object in two files: the later one is rejected, naming both', async (t) => {
  const set = new ManifestSet();
  setFile(set, 'm/b.yaml', POD('web-0', '10.0.0.1'));
  set.takeBatch();
  setFile(set, 'm/a.yaml', POD('web-0', '10.0.0.2'));
  const batch = set.takeBatch();
  t.same(batch.upserts, [], 'the first definition keeps serving although a.yaml sorts first');
  t.equal(batch.rejections.length, 1);
  t.equal(
    formatRejection(batch.rejections[0]!),
    'm/a.yaml doc 1: Pod shop/web-0: is also defined in m/b.yaml, whose definition is used; remove one of them',
  );

  set.removeFile('m/b.yaml');
  const handover = set.takeBatch();
  t.match(
    handover.upserts,
    [{ name: 'web-0', podIps: ['10.0.0.2'] }],
    'when the owner goes, the other definition takes over',
  );
  t.same(handover.deletes, []);
  t.equal(handover.clearedRejections?.length, 1, 'and the duplicate rejection is cleared');
});

t.test('rejections are cleared when the file is fixed', async (t) => {
  const set = new ManifestSet();
  setFile(set, 'm/a.yaml', POD('web-0', 'bad'));
  const rejected = set.takeBatch();
  t.equal(rejected.rejections.length, 1);
  t.same(rejected.upserts, []);
  t.same(set.takeBatch().rejections, [], 'an unchanged rejection is not re-sent');
  setFile(set, 'm/a.yaml', POD('web-0', '10.0.0.1'));
  const fixed = set.takeBatch();
  t.equal(fixed.upserts.length, 1);
  t.same(fixed.clearedRejections, ['m/a.yaml|Pod/shop/web-0']);
});

t.test('an edit that breaks an object name sends no delete; the fix clears the rejection', async (t) => {
  const set = new ManifestSet();
  setFile(set, 'm/a.yaml', [POD('web-0', '10.0.0.1'), POD('web-1', '10.0.0.2')].join('---\n'));
  set.takeBatch();

  setFile(set, 'm/a.yaml', [POD('web-0', '10.0.0.1'), POD('Web_1', '10.0.0.3')].join('---\n'));
  const broken = set.takeBatch();
  t.same(broken.deletes, [], 'web-1 is not deleted');
  t.same(broken.upserts, []);
  t.same(broken.rejections.map(formatRejection), [
    'm/a.yaml doc 2: Pod shop/Web_1: metadata.name must be a DNS-1123 subdomain (lower-case letters, digits, "-" and ".", at most 253 characters), got "Web_1"',
  ]);

  setFile(set, 'm/a.yaml', [POD('web-0', '10.0.0.1'), POD('web-1', '10.0.0.3')].join('---\n'));
  const fixed = set.takeBatch();
  t.same(
    fixed.upserts.map((r) => r.name),
    ['web-1'],
  );
  t.same(fixed.deletes, []);
  t.equal(fixed.clearedRejections?.length, 1, 'the rejection is cleared');
});
