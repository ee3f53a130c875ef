// Kubernetes name formats (RFC 1123 / RFC 1035 as Kubernetes applies them): the one set of checks.

const DNS1123_LABEL_RE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN_RE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS1035_LABEL_RE = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
/** Gateway API hostnames: RFC 1123 names with an optional leading `*.` label; upper case is not allowed. */
const GATEWAY_HOSTNAME_RE = /^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

// Lengths from Kubernetes' validation: a DNS label is at most 63 characters, a subdomain at most 253.
const MAX_LABEL_CHARS = 63;
const MAX_SUBDOMAIN_CHARS = 253;

export type NameFormat = 'dns1123-label' | 'dns1123-subdomain' | 'dns1035-label';

/** Why `name` is not valid in `format`, or undefined if it is. */
export function nameProblem(name: string, format: NameFormat): string | undefined {
  switch (format) {
    case 'dns1123-label':
      return name.length <= MAX_LABEL_CHARS && DNS1123_LABEL_RE.test(name)
        ? undefined
        : 'must be a DNS-1123 label (lower-case letters, digits and "-", at most 63 characters)';
    case 'dns1123-subdomain':
      return name.length <= MAX_SUBDOMAIN_CHARS && DNS1123_SUBDOMAIN_RE.test(name)
        ? undefined
        : 'must be a DNS-1123 subdomain (lower-case letters, digits, "-" and ".", at most 253 characters)';
    case 'dns1035-label':
      return name.length <= MAX_LABEL_CHARS && DNS1035_LABEL_RE.test(name)
        ? undefined
        : 'must be a DNS-1035 label (a lower-case letter, then letters, digits and "-", at most 63 characters)';
  }
}

/** A Gateway API hostname: RFC 1123, optionally `*.`-prefixed, not an IP address. */
export function isGatewayHostname(hostname: string): boolean {
  return (
    hostname.length <= MAX_SUBDOMAIN_CHARS &&
    GATEWAY_HOSTNAME_RE.test(hostname) &&
    !/^[0-9.]+$/.test(hostname)
  );
}
