// lab/cluster/pod-spec.ts: what the lab reads from a Pod manifest (command, env) and the lab's own
// checks (nodes, CIDRs), as table tests.
import t from 'tap';
import { planLab } from '../../../lab/cluster/plan.js';
import {
  labProblems,
  nodeForPod,
  podEnv,
  readPodRunSpec,
  resolveArgv,
} from '../../../lab/cluster/pod-spec.js';

const plan = planLab({
  id: 't1',
  dir: '/tmp/weft-pod-spec',
  nodes: 2,
  podCidrBase: '10.77',
  serviceCidr: '10.96.0.0/16',
});

const pod = (spec: unknown, status: unknown = undefined) => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name: 'p', namespace: 'default', labels: { version: 'v9' } },
  spec,
  ...(status === undefined ? {} : { status }),
});

t.test('readPodRunSpec: command + args of the first container, env values and field refs', async (t) => {
  t.plan(4);
  const spec = readPodRunSpec(
    pod({
      containers: [
        {
          command: ['weft', 'lab', 'workload', 'echo'],
          args: ['--port', '8080'],
          env: [
            { name: 'A', value: 'b' },
            { name: 'V', valueFrom: { fieldRef: { fieldPath: "metadata.labels['version']" } } },
            { name: 'IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
          ],
        },
      ],
    }),
  );
  if ('reason' in spec) throw new Error(spec.reason);
  t.same(spec.argv, ['weft', 'lab', 'workload', 'echo', '--port', '8080']);
  const env = podEnv(spec, {
    namespace: 'default',
    name: 'p',
    serviceAccount: 'sa',
    node: plan.nodes[0]!,
    ip: '10.77.1.10',
    labels: { version: 'v9' },
  });
  t.match(env, {
    A: 'b',
    V: 'v9',
    IP: '10.77.1.10',
    POD_NAME: 'p',
    POD_NAMESPACE: 'default',
    NODE_NAME: 'node-1',
  });
  t.same(
    resolveArgv(spec.argv).slice(2),
    ['lab', 'workload', 'echo', '--port', '8080'],
    '`weft` runs this build',
  );
  t.equal(resolveArgv(spec.argv)[0], process.execPath);
});

t.test('readPodRunSpec: a pod without containers is a network only; bad fields are named', async (t) => {
  const cases: [unknown, string | undefined][] = [
    [{}, undefined],
    [{ containers: [] }, undefined],
    [{ containers: 'x' }, 'spec.containers'],
    [{ containers: [{ command: 'sleep 1' }] }, 'spec.containers[0].command'],
    [{ containers: [{ command: ['sleep', 1] }] }, 'spec.containers[0].command[1]'],
    [{ containers: [{ args: ['x'] }] }, 'spec.containers[0].command'],
    [{ containers: [{ command: ['x'], env: [{ name: 'A', value: 1 }] }] }, 'spec.containers[0].env[0].value'],
    [
      { containers: [{ command: ['x'], env: [{ name: 'A', valueFrom: { secretKeyRef: {} } }] }] },
      'spec.containers[0].env[0].valueFrom',
    ],
  ];
  t.plan(cases.length);
  for (const [spec, field] of cases) {
    const r = readPodRunSpec(pod(spec));
    t.equal('reason' in r ? r.field : undefined, field, JSON.stringify(spec));
  }
});

t.test('labProblems: nodes and CIDRs of this lab', async (t) => {
  const cases: [unknown, unknown, string[]][] = [
    [{ nodeName: 'node-2' }, undefined, []],
    [{ nodeName: 'node-3' }, undefined, ['spec.nodeName']],
    [{ nodeName: 'node-1' }, { podIP: '10.77.1.7' }, []],
    [{ nodeName: 'node-1' }, { podIP: '10.77.2.7' }, ['status.podIP']],
    [{ nodeName: 'node-1' }, { podIP: '10.77.1.1' }, ['status.podIP']],
    [{ nodeName: 'node-1' }, { podIP: '10.77.1.255' }, ['status.podIP']],
    [{}, { podIP: '10.77.2.7' }, []],
    [{}, { podIP: '192.168.0.1' }, ['status.podIP']],
  ];
  t.plan(cases.length + 2);
  for (const [spec, status, fields] of cases)
    t.same(
      labProblems(plan, pod(spec, status)).map((p) => p.field),
      fields,
      `${JSON.stringify(spec)} ${JSON.stringify(status)}`,
    );
  t.equal(nodeForPod(plan, undefined, '10.77.2.7')?.name, 'node-2', 'an IP alone places the pod');
  t.same(
    labProblems(plan, {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 's' },
      spec: { clusterIP: '10.0.0.1' },
    }).map((p) => p.field),
    ['spec.clusterIP'],
  );
});
