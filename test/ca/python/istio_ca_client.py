"""An independent client of the Weft CA: Python grpcio with stubs generated from Istio's proto,
a key and CSR from `cryptography`, and the returned certificate parsed by `cryptography`.

Usage: istio_ca_client.py GENERATED_DIR HOST:PORT ROOT_PEM TOKEN SPIFFE_ID
Prints one JSON object describing what the CA returned.
"""
import json
import sys

generated, target, root_file, token, spiffe_id = sys.argv[1:6]
sys.path.insert(0, generated)

import grpc  # noqa: E402
from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import ExtendedKeyUsageOID  # noqa: E402
from google.protobuf import struct_pb2  # noqa: E402

import ca_pb2  # noqa: E402
import ca_pb2_grpc  # noqa: E402

key = ec.generate_private_key(ec.SECP256R1())
csr = (
    x509.CertificateSigningRequestBuilder()
    .subject_name(x509.Name([]))
    .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(spiffe_id)]), critical=True)
    .sign(key, hashes.SHA256())
)
metadata = struct_pb2.Struct()
metadata.update({"ImpersonatedIdentity": spiffe_id})
request = ca_pb2.IstioCertificateRequest(
    csr=csr.public_bytes(serialization.Encoding.PEM).decode(),
    validity_duration=3600,
    metadata=metadata,
)
with open(root_file, "rb") as f:
    creds = grpc.ssl_channel_credentials(root_certificates=f.read())
with grpc.secure_channel(target, creds) as channel:
    stub = ca_pb2_grpc.IstioCertificateServiceStub(channel)
    response = stub.CreateCertificate(request, metadata=[("authorization", f"Bearer {token}")], timeout=10)

leaf = x509.load_pem_x509_certificate(response.cert_chain[0].encode())
san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName)
eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
ku = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
# Debian's cryptography (38) predates verify_directly_issued_by: check the signature by hand.
root = x509.load_pem_x509_certificate(response.cert_chain[-1].encode())
root.public_key().verify(leaf.signature, leaf.tbs_certificate_bytes, ec.ECDSA(leaf.signature_hash_algorithm))
print(
    json.dumps(
        {
            "chain_length": len(response.cert_chain),
            "uris": san.value.get_values_for_type(x509.UniformResourceIdentifier),
            "dns": san.value.get_values_for_type(x509.DNSName),
            "san_critical": san.critical,
            "subject": leaf.subject.rfc4514_string(),
            "server_auth": ExtendedKeyUsageOID.SERVER_AUTH in eku,
            "client_auth": ExtendedKeyUsageOID.CLIENT_AUTH in eku,
            "digital_signature": ku.digital_signature,
            "key_encipherment": ku.key_encipherment,
            "same_key": leaf.public_key().public_numbers() == key.public_key().public_numbers(),
            "lifetime_s": (leaf.not_valid_after - leaf.not_valid_before).total_seconds(),
            "verified_by_root": True,
        }
    )
)
