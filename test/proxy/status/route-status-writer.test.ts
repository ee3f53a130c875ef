// The HTTPRoute status writer against the API server double, through @kubernetes/client-node: it writes
// the waypoint's conditions, keeps other controllers' and other waypoints' entries, removes its own
// when it stops serving a route, writes nothing when nothing changed, rides out a conflict, and stays
// quiet when it is not the leader.
import t from 'tap';
import { ConfigStore } from '../../../core/store.js';
import { loadKubeConfig } from '../../../core/kubernetes/config.js';
import { componentLogger } from '../../../core/log.js';
import type { ParentRef } from '../../../core/model/index.js';
import {
  RouteStatusWriter,
  kubernetesRouteApi,
  type RouteStatusApi,
} from '../../../proxy/status/route-status-writer.js';
import { WAYPOINT_CONTROLLER_NAME, type RouteStatus } from '../../../proxy/routing/status.js';
import { kubeconfigFor, startKubeApiServer, type KubeObject } from '../../helpers/kube-api-server.js';

const OTHER_CONTROLLER = 'example.net/gateway-controller';

function route(parentRefs: object[], status?: object): KubeObject {
  return {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'HTTPRoute',
    metadata: { name: 'web', namespace: 'shop' },
    spec: { parentRefs, rules: [{ backendRefs: [{ name: 'web', port: 80 }] }] },
    ...(status === undefined ? {} : { status }),
  };
}

const SERVICE_PARENT: ParentRef = {
  group: '',
  kind: 'Service',
  namespace: 'shop',
  name: 'web',
  port: undefined,
  sectionName: undefined,
};

function accepted(resolved: boolean): RouteStatus {
  return {
    namespace: 'shop',
    name: 'web',
    parents: [
      {
        parentRef: SERVICE_PARENT,
        controllerName: WAYPOINT_CONTROLLER_NAME,
        conditions: [
          { type: 'Accepted', status: 'True', reason: 'Accepted', message: 'Route was valid' },
          resolved
            ? {
                type: 'ResolvedRefs',
                status: 'True',
                reason: 'ResolvedRefs',
                message: 'All references resolved',
              }
            : {
                type: 'ResolvedRefs',
                status: 'False',
                reason: 'BackendNotFound',
                message: 'no Service web2',
              },
        ],
      },
    ],
  };
}

interface Conditions {
  type: string;
  status: string;
  lastTransitionTime: string;
  observedGeneration?: number;
}
interface Entry {
  controllerName: string;
  parentRef: { name: string; kind?: string };
  conditions: Conditions[];
}

interface Teardowns {
  teardown(fn: () => unknown): void;
}

async function setup(t: Teardowns, initial: KubeObject) {
  const server = await startKubeApiServer(t, [initial]);
  const api = kubernetesRouteApi(loadKubeConfig(kubeconfigFor(t, server), 'test'));
  const store = new ConfigStore();
  let statuses: readonly RouteStatus[] = [];
  let leader = true;
  let clock = Date.parse('2026-11-22T10:00:00Z');
  const writer = new RouteStatusWriter({
    store,
    statuses: () => statuses,
    api,
    isLeader: () => leader,
    log: componentLogger('test.route-status'),
    now: () => new Date(clock),
  });
  t.teardown(() => writer.close());
  const writes: string[] = [];
  server.on('request', (line) => {
    if (line.startsWith('PUT ')) writes.push(line);
  });
  const entries = (): Entry[] =>
    (server.get('HTTPRoute', 'shop', 'web')?.status as { parents?: Entry[] } | undefined)?.parents ?? [];
  return {
    server,
    api,
    writer,
    writes,
    entries,
    set(next: readonly RouteStatus[]) {
      statuses = next;
    },
    lead(is: boolean) {
      leader = is;
    },
    tick(ms: number) {
      clock += ms;
    },
  };
}

t.test('writes conditions with observedGeneration; unchanged status is not written again', async (t) => {
  const s = await setup(t, route([{ group: '', kind: 'Service', name: 'web' }]));
  s.set([accepted(true)]);
  s.writer.sync();
  await s.writer.idle();
  const [entry] = s.entries();
  t.equal(entry?.controllerName, WAYPOINT_CONTROLLER_NAME);
  t.same(
    entry?.conditions.map((c) => [c.type, c.status, c.observedGeneration]),
    [
      ['Accepted', 'True', 1],
      ['ResolvedRefs', 'True', 1],
    ],
  );
  t.equal(s.writes.length, 1);
  s.writer.sync();
  await s.writer.idle();
  t.equal(s.writes.length, 1, 'the same status is not written twice');

  // The route's spec changes (generation 2) and a backend goes missing: ResolvedRefs flips.
  const written = s.server.get('HTTPRoute', 'shop', 'web')?.status as object | undefined;
  s.server.update(route([{ group: '', kind: 'Service', name: 'web' }, { name: 'extra-unused' }], written));
  s.tick(60_000);
  s.set([accepted(false)]);
  s.writer.sync();
  await s.writer.idle();
  const conditions = s.entries()[0]?.conditions ?? [];
  t.same(
    conditions.map((c) => [c.type, c.status, c.observedGeneration]),
    [
      ['Accepted', 'True', 2],
      ['ResolvedRefs', 'False', 2],
    ],
  );
  t.equal(conditions[0]?.lastTransitionTime, '2026-11-22T10:00:00Z', 'Accepted kept its transition time');
  t.equal(conditions[1]?.lastTransitionTime, '2026-11-22T10:01:00Z', 'ResolvedRefs changed now');
});

t.test("other controllers' entries stay; ours go when the route is no longer served", async (t) => {
  const theirs = {
    controllerName: OTHER_CONTROLLER,
    parentRef: { name: 'edge' },
    conditions: [
      {
        type: 'Accepted',
        status: 'True',
        reason: 'Accepted',
        message: '',
        lastTransitionTime: '2026-01-01T00:00:00Z',
      },
    ],
  };
  const stale = { ...theirs, controllerName: WAYPOINT_CONTROLLER_NAME, parentRef: { name: 'gone' } };
  const s = await setup(
    t,
    route([{ name: 'edge' }, { group: '', kind: 'Service', name: 'web' }], { parents: [theirs, stale] }),
  );
  s.set([accepted(true)]);
  s.writer.sync();
  await s.writer.idle();
  t.same(
    s.entries().map((e) => [e.controllerName, e.parentRef.name]),
    [
      [OTHER_CONTROLLER, 'edge'],
      [WAYPOINT_CONTROLLER_NAME, 'web'],
    ],
    "another controller's entry is kept; our stale one (parent not in spec) is gone",
  );

  s.set([]);
  s.writer.sync();
  await s.writer.idle();
  t.same(
    s.entries().map((e) => e.controllerName),
    [OTHER_CONTROLLER],
    'a route no longer served loses our entry only',
  );
});

t.test('a conflicting write is retried on the fresh object; a follower writes nothing', async (t) => {
  const s = await setup(t, route([{ group: '', kind: 'Service', name: 'web' }]));
  let raced = false;
  const racing: RouteStatusApi = {
    get: (namespace, name) => s.api.get(namespace, name),
    async replaceStatus(object) {
      if (!raced) {
        raced = true;
        // Another writer changes the route between our read and our write: our PUT gets 409.
        const current = s.server.get('HTTPRoute', 'shop', 'web');
        if (current !== undefined)
          s.server.update({ ...current, metadata: { ...current.metadata, labels: { x: '1' } } });
      }
      return s.api.replaceStatus(object);
    },
  };
  let statuses: readonly RouteStatus[] = [accepted(true)];
  const writer = new RouteStatusWriter({
    store: new ConfigStore(),
    statuses: () => statuses,
    api: racing,
    isLeader: () => true,
    log: componentLogger('test.route-status'),
  });
  t.teardown(() => writer.close());
  writer.sync();
  await writer.idle();
  t.ok(raced);
  t.equal(s.entries().length, 1, 'written on the second attempt');

  s.lead(false);
  statuses = [];
  s.set([accepted(false)]);
  s.writer.sync();
  await s.writer.idle();
  t.equal(s.entries()[0]?.conditions[1]?.status, 'True', 'the follower did not write');
});
