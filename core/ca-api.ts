// The certificate API the CA serves and the agent calls: Istio's IstioCertificateService.
import { fileURLToPath } from 'node:url';
import { existsSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

export const CA_SERVICE_NAME = 'istio.v1.auth.IstioCertificateService';
export const CREATE_CERTIFICATE_PATH = `/${CA_SERVICE_NAME}/CreateCertificate`;
/** The metadata key a node agent uses to ask for a workload's identity (Istio's name). */
export const IMPERSONATED_IDENTITY_KEY = 'ImpersonatedIdentity';

/** google.protobuf.Value as proto-loader decodes it (oneofs: only the set field is present). */
export interface ProtoValue {
  nullValue?: string;
  numberValue?: number;
  stringValue?: string;
  boolValue?: boolean;
  structValue?: ProtoStruct;
  listValue?: { values?: ProtoValue[] };
}
export interface ProtoStruct {
  fields?: Record<string, ProtoValue>;
}

export interface CertificateRequest {
  csr: string;
  /** int64 seconds; proto-loader gives it as a decimal string so large values are not rounded. */
  validityDuration: string | number;
  metadata?: ProtoStruct | null;
}

export interface CertificateResponse {
  certChain: string[];
}

function protoPath(): string {
  // Works from the TypeScript sources and from dist/, where the build copies core/proto.
  const path = fileURLToPath(new URL('./proto/ca.proto', import.meta.url));
  if (!existsSync(path)) throw new Error(`CA API proto not found at ${path}; run the build`);
  return path;
}

let cachedService: grpc.ServiceDefinition | undefined;

/** The service definition, loaded once; request/response field names are camelCase. */
export function caServiceDefinition(): grpc.ServiceDefinition {
  if (cachedService) return cachedService;
  const packageDef = protoLoader.loadSync(protoPath(), {
    keepCase: false,
    longs: String,
    enums: String,
    defaults: true,
    oneofs: false,
  });
  const loaded = grpc.loadPackageDefinition(packageDef) as unknown as {
    istio: { v1: { auth: { IstioCertificateService: grpc.ServiceClientConstructor } } };
  };
  cachedService = loaded.istio.v1.auth.IstioCertificateService.service;
  return cachedService;
}

/** A client constructor for the certificate service. */
export function caClientConstructor(): grpc.ServiceClientConstructor {
  return grpc.makeGenericClientConstructor(caServiceDefinition(), CA_SERVICE_NAME);
}

/** Reads a string field from a protobuf Struct, or undefined when absent or of another type. */
export function structString(struct: ProtoStruct | null | undefined, key: string): string | undefined {
  const value = struct?.fields?.[key];
  return value?.stringValue === undefined ? undefined : value.stringValue;
}

export function stringStruct(entries: Record<string, string>): ProtoStruct {
  const fields: Record<string, ProtoValue> = {};
  for (const [k, v] of Object.entries(entries)) fields[k] = { stringValue: v };
  return { fields };
}

/** The generated client's one method, typed. */
export type CaServiceStub = grpc.Client & {
  CreateCertificate(
    request: CertificateRequest,
    metadata: grpc.Metadata,
    options: grpc.CallOptions,
    callback: (err: grpc.ServiceError | null, response?: CertificateResponse) => void,
  ): grpc.ClientUnaryCall;
};

export function createCaStub(
  target: string,
  credentials: grpc.ChannelCredentials,
  options: grpc.ChannelOptions = {},
): CaServiceStub {
  const Client = caClientConstructor();
  return new Client(target, credentials, options) as unknown as CaServiceStub;
}
