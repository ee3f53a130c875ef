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

t.test('an edit that breaks what identifies an object keeps the object until it is fixed', async (t) => {
  const good = readManifestFile(
    'm/pods.yaml',
    [POD('web-0', '10.0.0.1'), POD('web-1', '10.0.0.2')].join('---\n'),
  );
  const webOne = POD('web-1', '10.0.0.3');
  const cases: readonly { name: string; edit: string; rejection: RegExp }[] = [
    {
      name: 'metadata is not an object',
      edit: webOne.replace(/^metadata: .*$/m, 'metadata: oops'),
      rejection: /^m\/pods\.yaml doc 2: Pod: metadata must be an object/,
    },
    {
      name: 'an invalid name',
      edit: webOne.replace('name: web-1', 'name: Web_1'),
      rejection: /^m\/pods\.yaml doc 2: Pod shop\/Web_1: metadata\.name must be a DNS-1123 subdomain/,
    },
    {
      name: 'an invalid namespace',
      edit: webOne.replace('namespace: shop', 'namespace: Shop'),
      rejection: /^m\/pods\.yaml doc 2: Pod Shop\/web-1: metadata\.namespace must be a DNS-1123 label/,
    },
    {
      name: 'kind removed',
      edit: webOne.replace('kind: Pod\n', ''),
      rejection: /^m\/pods\.yaml doc 2: kind is required$/,
    },
    {
      name: 'apiVersion not a string',
      edit: webOne.replace('apiVersion: v1', 'apiVersion: 3'),
      rejection: /^m\/pods\.yaml doc 2: Pod: apiVersion must be a string, got 3$/,
    },
  ];
  for (const { name, edit, rejection } of cases) {
    t.test(name, async (t) => {
      const broken = readManifestFile('m/pods.yaml', [POD('web-0', '10.0.0.9'), edit].join('---\n'), good);
      t.match(
        broken.records.get('Pod/shop/web-0'),
        { podIps: ['10.0.0.9'] },
        'the readable document applies',
      );
      t.equal(
        broken.records.get('Pod/shop/web-1'),
        good.records.get('Pod/shop/web-1'),
        'the object the broken document defined keeps serving',
      );
      t.ok(broken.claims.has('Pod/shop/web-1'), 'and is still claimed by the file');
      t.equal(broken.rejections.length, 1);
      t.match(formatRejection(broken.rejections[0]!), rejection);

      const stillBroken = readManifestFile(
        'm/pods.yaml',
        [POD('web-0', '10.0.0.9'), edit].join('---\n'),
        broken,
      );
      t.equal(
        stillBroken.records.get('Pod/shop/web-1'),
        good.records.get('Pod/shop/web-1'),
        'and keeps serving across re-reads',
      );

      const fixed = readManifestFile('m/pods.yaml', [POD('web-0', '10.0.0.9'), webOne].join('---\n'), broken);
      t.match(fixed.records.get('Pod/shop/web-1'), { podIps: ['10.0.0.3'] }, 'the fix applies');
      t.same(fixed.rejections, [], 'and clears the rejection');
    });
  }
});

t.test(
  'removing a valid object while another document is unidentifiable keeps it (as a syntax error)',
  async (t) => {
    const good = readManifestFile('m/ns.yaml', [NS('a'), NS('b')].join('---\n'));
    const broken = readManifestFile(
      'm/ns.yaml',
      [NS('a'), 'apiVersion: v1\nkind: Namespace\n'].join('---\n'),
      good,
    );
    t.same([...broken.records.keys()].sort(), ['Namespace/a', 'Namespace/b']);
    const fixed = readManifestFile('m/ns.yaml', NS('a'), broken);
    t.same([...fixed.records.keys()], ['Namespace/a'], 'once every document is readable, a removal applies');
    t.same(fixed.rejections, []);
  },
);

t.test('a List whose items are not a list keeps the objects it held', async (t) => {
  const list = (items: unknown) => JSON.stringify({ apiVersion: 'v1', kind: 'List', items }, undefined, 2);
  const good = readManifestFile(
    'm/list.json',
    list([{ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'a' } }]),
  );
  const broken = readManifestFile('m/list.json', list({ oops: true }), good);
  t.equal(broken.records.get('Namespace/a'), good.records.get('Namespace/a'), 'kept');
  t.same(broken.rejections.map(formatRejection), [
    'm/list.json doc 1: List: items must be a list, got {"oops":true}',
  ]);
  const emptied = readManifestFile('m/list.json', list([]), broken);
  t.same([...emptied.records.keys()], [], 'an empty List removes them');
  t.same(emptied.rejections, []);
});
