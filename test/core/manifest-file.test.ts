// core/sources/manifest-file.ts: documents, Lists, syntax errors, and last-good carry-over.
import t from 'tap';
import { formatRejection } from '../../core/convert/index.js';
import { readManifestFile } from '../../core/sources/manifest-file.js';

const NS = (name: string) => `apiVersion: v1\nkind: Namespace\nmetadata: { name: ${name} }\n`;
const POD = (name: string, ip: string) =>
  `apiVersion: v1\nkind: Pod\nmetadata: { name: ${name}, namespace: shop }\nstatus: { podIP: "${ip}" }\n`;

t.test('multi-document YAML: every document, empty ones skipped, unknown kinds ignored', async (t) => {
  const text = [
    NS('a'),
    POD('web-0', '10.0.0.1'),
    '',
    'apiVersion: v1\nkind: ConfigMap\nmetadata: { name: c }\n',
  ].join('---\n');
  const contents = readManifestFile('m/all.yaml', text);
  t.same([...contents.records.keys()], ['Namespace/a', 'Pod/shop/web-0']);
  t.same(contents.rejections, []);
});

t.test('a rejection names the file and the document', async (t) => {
  const text = [NS('a'), POD('web-0', 'not-an-ip')].join('---\n');
  const contents = readManifestFile('m/bad.yaml', text);
  t.same([...contents.records.keys()], ['Namespace/a'], 'the valid document still converts');
  t.same(
    [...contents.claims.keys()],
    ['Namespace/a', 'Pod/shop/web-0'],
    'the invalid object is still claimed',
  );
  t.equal(contents.rejections.length, 1);
  t.equal(
    formatRejection(contents.rejections[0]!),
    'm/bad.yaml doc 2: Pod shop/web-0: status.podIP must be an IP address, got "not-an-ip"',
  );
});

t.test('an invalid edit keeps the last good record of that object', async (t) => {
  const good = readManifestFile(
    'm/pods.yaml',
    [POD('web-0', '10.0.0.1'), POD('web-1', '10.0.0.2')].join('---\n'),
  );
  const edited = readManifestFile(
    'm/pods.yaml',
    [POD('web-0', 'oops'), POD('web-1', '10.0.0.3')].join('---\n'),
    good,
  );
  t.equal(
    edited.records.get('Pod/shop/web-0'),
    good.records.get('Pod/shop/web-0'),
    'web-0: last good record kept',
  );
  t.match(edited.records.get('Pod/shop/web-1'), { podIps: ['10.0.0.3'] }, 'web-1: updated');
  t.equal(edited.rejections.length, 1);
});

t.test(
  'a YAML syntax error keeps every object of the file the readable documents do not mention',
  async (t) => {
    const good = readManifestFile(
      'm/pods.yaml',
      [POD('web-0', '10.0.0.1'), POD('web-1', '10.0.0.2')].join('---\n'),
    );
    const broken = readManifestFile(
      'm/pods.yaml',
      [POD('web-0', '10.0.0.9'), 'kind: Pod\nmetadata: { name: [unclosed\n'].join('---\n'),
      good,
    );
    t.match(broken.records.get('Pod/shop/web-0'), { podIps: ['10.0.0.9'] }, 'the readable document applies');
    t.equal(
      broken.records.get('Pod/shop/web-1'),
      good.records.get('Pod/shop/web-1'),
      'the object of the broken document stays',
    );
    t.equal(broken.rejections.length, 1);
    t.match(formatRejection(broken.rejections[0]!), /^m\/pods\.yaml doc 2: YAML syntax error: /);
  },
);

t.test('JSON: a single object, a List, and a syntax error', async (t) => {
  const single = readManifestFile(
    'm/ns.json',
    JSON.stringify({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'a' } }),
  );
  t.same([...single.records.keys()], ['Namespace/a']);
  const list = readManifestFile(
    'm/list.json',
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'List',
      items: [
        { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'a' } },
        { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'B' } },
      ],
    }),
  );
  t.same([...list.records.keys()], ['Namespace/a']);
  t.match(
    formatRejection(list.rejections[0]!),
    /^m\/list\.json doc 1 items\[1\]: Namespace B: metadata\.name must be/,
  );
  const broken = readManifestFile('m/broken.json', '{"apiVersion": ');
  t.match(formatRejection(broken.rejections[0]!), /^m\/broken\.json doc 1: JSON syntax error/);
});

t.test('the same object twice in one file: the first wins', async (t) => {
  const contents = readManifestFile(
    'm/dup.yaml',
    [POD('web-0', '10.0.0.1'), POD('web-0', '10.0.0.2')].join('---\n'),
  );
  t.match(contents.records.get('Pod/shop/web-0'), { podIps: ['10.0.0.1'] });
  t.match(
    formatRejection(contents.rejections[0]!),
    /doc 2: Pod shop\/web-0: is defined twice in this file \(first in doc 1\)/,
  );
});
