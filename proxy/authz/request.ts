// What the waypoint knows about one HTTP request when it authorizes it, and the reusable form the
// predicates read. The connection half (identity, addresses, port) is the node agent's
// (core/authz/connection-match.ts); the HTTP half is added here.
import {
  ConnectionFacts,
  type ConnectionAttributes,
  type ConnectionNeeds,
} from '../../core/authz/connection-match.js';

/**
 * One request at the waypoint. The connection attributes describe the original client, carried through
 * HBONE (authz.md §6): `srcIdentity` is the client's SPIFFE identity from the tunnel, `srcIp` the
 * client's own address restored from the tunnel (#46982), `dstIp`/`dstPort` the address and port the
 * client addressed (the Service VIP and Service port for service-addressed traffic).
 */
export interface WaypointRequest extends ConnectionAttributes {
  /** As received (HTTP/1.1 method, HTTP/2 `:method`); the parsers refuse lower-case and unknown verbs. */
  readonly method: string;
  /** The normalized path, without the query (`normalizeRequestTarget(...).path`). */
  readonly path: string;
  /** The query as received, with its `?`, or ""; only read for `request.headers[:path]`. */
  readonly query: string;
  /** `:authority`, or `Host` for HTTP/1.1, as received (with any port the client sent); undefined if absent. */
  readonly host: string | undefined;
  /**
   * The headers as a flat name/value list in arrival order, as Node gives them (`req.rawHeaders`, the
   * HTTP/2 `rawHeaders`). Names in any case; HTTP/2 pseudo-headers in it are ignored.
   */
  readonly rawHeaders: readonly string[];
  /**
   * The TLS SNI of the connection the request arrived on, if any. Requests inside an HBONE tunnel are
   * plaintext HTTP, so this is normally undefined, and positive `connection.sni` values fail.
   */
  readonly sni: string | undefined;
}

/** Which HTTP attributes the compiled policies read, beyond the connection ones. */
export interface RequestNeeds extends ConnectionNeeds {
  /** Whether any rule reads the host, so it is lower-cased once per request only then. */
  readonly needsHost: boolean;
}

/**
 * A request's attributes in the form the predicates read. One instance serves every decision: the
 * evaluator is synchronous and fills it at the start of each call.
 */
export class RequestFacts extends ConnectionFacts {
  method = '';
  path = '';
  query = '';
  /** Lower-cased, for the case-insensitive `hosts` match; undefined when absent (or not needed). */
  host: string | undefined = undefined;
  /** As received, for `request.headers[:authority]` and `[host]`. */
  rawHost: string | undefined = undefined;
  rawHeaders: readonly string[] = [];
  sni = '';

  readRequest(request: WaypointRequest, needs: RequestNeeds): void {
    this.read(request, needs);
    this.method = request.method;
    this.path = request.path;
    this.query = request.query;
    this.rawHost = request.host;
    this.host = needs.needsHost && request.host !== undefined ? request.host.toLowerCase() : undefined;
    this.rawHeaders = request.rawHeaders;
    this.sni = request.sni ?? '';
  }

  /**
   * The value of header `name` (already lower-case), or undefined if absent. Several fields of one name
   * are joined with "," as Envoy does before matching. `:authority` and `host` read the request's host,
   * `:method` its method and `:path` the normalized path with the query; other pseudo-headers are absent.
   */
  header(name: string): string | undefined {
    if (name.charCodeAt(0) === 0x3a /* : */ || name === 'host') return this.#pseudoHeader(name);
    const raw = this.rawHeaders;
    let value: string | undefined;
    for (let i = 0; i + 1 < raw.length; i += 2) {
      const field = raw[i] as string;
      if (field.length === name.length && field.toLowerCase() === name) {
        const fieldValue = raw[i + 1] as string;
        value = value === undefined ? fieldValue : `${value},${fieldValue}`;
      }
    }
    return value;
  }

  #pseudoHeader(name: string): string | undefined {
    switch (name) {
      case ':authority':
      case 'host':
        return this.rawHost;
      case ':method':
        return this.method;
      case ':path':
        return this.path + this.query;
      default:
        return undefined;
    }
  }
}
