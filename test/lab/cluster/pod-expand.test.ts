// lab/cluster/pod-spec.ts: Kubernetes' `$(VAR)` expansion of a lab pod's command, args and env values.
import t from 'tap';
import { planLab } from '../../../lab/cluster/plan.js';
import {
  escapeVars,
  expandArgv,
  expandVars,
  podEnv,
  readPodRunSpec,
  resolveArgv,
} from '../../../lab/cluster/pod-spec.js';

const env = { NODE_NAME: 'node-2', POD_IP: '10.77.2.10', EMPTY: '', DOLLAR: '$(NODE_NAME)' };

t.test('expandVars follows Kubernetes (third_party/forked/golang/expansion)', async (t) => {
  const cases: [string, string][] = [
    ['$(NODE_NAME)', 'node-2'],
    ['--token-file=/lab/tokens/$(NODE_NAME).token', '--token-file=/lab/tokens/node-2.token'],
    ['$(NODE_NAME)/$(POD_IP)', 'node-2/10.77.2.10'],
    ['x$(EMPTY)y', 'xy'],
    ['$$(NODE_NAME)', '$(NODE_NAME)'],
    ['$$$(NODE_NAME)', '$node-2'],
    ['$$', '$'],
    ['$(UNDEFINED)', '$(UNDEFINED)'],
    ['a$(UNDEFINED)b$(NODE_NAME)', 'a$(UNDEFINED)bnode-2'],
    ['$(NODE_NAME', '$(NODE_NAME'],
    ['$NODE_NAME', '$NODE_NAME'],
    ['cost: 5$', 'cost: 5$'],
    ['$()', '$()'],
    ['$(constructor)', '$(constructor)'],
    // A value is not expanded again.
    ['$(DOLLAR)', '$(NODE_NAME)'],
    ['no references', 'no references'],
  ];
  t.plan(cases.length);
  for (const [input, want] of cases) t.equal(expandVars(input, env), want, input);
});

t.test('escapeVars gives text that expands to itself', async (t) => {
  const texts = ['/tmp/a$(NODE_NAME)b', '$$', '/plain/path', 'x$'];
  t.plan(texts.length + 1);
  for (const text of texts) t.equal(expandVars(escapeVars(text), env), text, text);
  t.same(expandArgv(['a', '$(NODE_NAME)', escapeVars('$(POD_IP)')], env), ['a', 'node-2', '$(POD_IP)']);
});

t.test('podEnv expands env values from the variables defined before them', async (t) => {
  const plan = planLab({
    id: 'x1',
    dir: '/tmp/weft-x',
    nodes: 2,
    podCidrBase: '10.77',
    serviceCidr: '10.96.0.0/16',
  });
  const spec = readPodRunSpec({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'p', namespace: 'shop' },
    spec: {
      containers: [
        {
          command: ['weft', '--log', '$(LOG)', '--later', '$(LATER)'],
          env: [
            { name: 'LOG', value: '/var/log/$(POD_NAME)-$(NODE_NAME).log' },
            { name: 'EARLY', value: '[$(LATER)]' },
            { name: 'LATER', value: 'late' },
          ],
        },
      ],
    },
  });
  if ('reason' in spec) throw new Error(spec.reason);
  const vars = podEnv(spec, {
    namespace: 'shop',
    name: 'p',
    serviceAccount: 'default',
    node: plan.nodes[1]!,
    ip: '10.77.2.10',
    labels: {},
  });
  t.equal(vars.LOG, '/var/log/p-node-2.log');
  t.equal(vars.EARLY, '[$(LATER)]', 'a variable defined later is not expanded');
  // The pod runner expands what the controller resolved: `weft`'s own paths stay as they are.
  const argv = expandArgv(resolveArgv(spec.argv), vars);
  t.equal(argv[0], process.execPath);
  t.same(argv.slice(2), ['--log', '/var/log/p-node-2.log', '--later', 'late']);
});
