// The agent's admin endpoint (:15000): what it holds, for people and for `weft` commands. Read-only;
// private keys are never shown.
import { createServer, type Server } from 'node:http';
import type { CertificateManager } from './identity/manager.js';

export interface AdminInputs {
  readonly nodeName: string;
  readonly certificates: CertificateManager;
  /** True once the first full configuration has been applied. */
  readonly isReady: () => boolean;
  readonly configVersion: () => number;
}

function sendJson(res: import('node:http').ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body, null, 2) + '\n');
}

export function createAdminServer(inputs: AdminInputs): Server {
  return createServer((req, res) => {
    if (req.method !== 'GET') return sendJson(res, 405, { error: 'GET only' });
    switch (req.url) {
      case '/certs':
        return sendJson(res, 200, { node: inputs.nodeName, certificates: inputs.certificates.status() });
      case '/healthz/ready':
        return inputs.isReady() ? sendJson(res, 200, { ready: true }) : sendJson(res, 503, { ready: false });
      case '/config':
        return sendJson(res, 200, { node: inputs.nodeName, version: inputs.configVersion() });
      default:
        return sendJson(res, 404, {
          error: `no such endpoint ${req.url ?? ''}`,
          endpoints: ['/certs', '/healthz/ready', '/config'],
        });
    }
  });
}
