"""An independent WIMSE WIT + WPT implementation on PyJWT, as a peer of svcauth
(draft-ietf-wimse-workload-creds-03, draft-ietf-wimse-wpt-02).

    python wimse_peer.py mint <alg> <target_uri> <access_token>
        -> {"jwks", "trust_domain", "workload", "wit", "wpt"}: a trust domain key (ES256), a
           workload key of <alg>, a WIT for it, and a WPT for <target_uri> binding <access_token>
    python wimse_peer.py verify <jwks_json> <trust_domain> <target_uri> <wit> <wpt> [<access_token>]
        -> the WIT's claims and the WPT's, after every check of the drafts
    python wimse_peer.py jwt-svid <alg> <audience>
        -> {"bundle", "svid"}: a SPIFFE bundle (a jwt-svid key of <alg>, RS256 or ES256, beside
           an x509-svid entry) and a JWT-SVID for <audience> signed with it (SPIFFE JWT-SVID)
"""
import base64
import hashlib
import json
import sys
import time
import uuid

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa


def token_hash(token):
    digest = hashlib.sha256(token.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def new_key(alg):
    if alg == "ES256":
        private = ec.generate_private_key(ec.SECP256R1())
        jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(private.public_key()))
    elif alg == "EdDSA":
        private = ed25519.Ed25519PrivateKey.generate()
        jwk = json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(private.public_key()))
    elif alg == "RS256":
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key()))
    else:
        raise SystemExit(f"unsupported alg {alg}")
    jwk["alg"] = alg
    return private, jwk


def mint(alg, target_uri, access_token):
    now = int(time.time())
    domain_key, domain_jwk = new_key("ES256")
    domain_jwk["kid"] = "py-" + uuid.uuid4().hex[:8]
    workload_key, workload_jwk = new_key(alg)
    workload = "spiffe://py.example/ns/peer/sa/client"
    wit = jwt.encode(
        {"iss": "https://issuer.py.example", "sub": workload, "iat": now, "exp": now + 3600,
         "jti": uuid.uuid4().hex, "cnf": {"jwk": workload_jwk}},
        domain_key, algorithm="ES256", headers={"kid": domain_jwk["kid"], "typ": "wit+jwt"})
    wpt = jwt.encode(
        {"aud": target_uri, "exp": now + 60, "jti": base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode(),
         "wth": token_hash(wit), "ath": token_hash(access_token)},
        workload_key, algorithm=alg, headers={"typ": "wpt+jwt"})
    print(json.dumps({"jwks": {"keys": [domain_jwk]}, "trust_domain": "py.example",
                      "workload": workload, "wit": wit, "wpt": wpt}))


def fail(why):
    raise SystemExit(f"refused: {why}")


def verify(jwks_json, trust_domain, target_uri, wit, wpt, access_token=None):
    jwks = jwt.PyJWKSet.from_dict(json.loads(jwks_json))
    header = jwt.get_unverified_header(wit)
    if header.get("typ") != "wit+jwt":
        fail("WIT typ")
    keys = [k for k in jwks.keys if k.key_id == header.get("kid")]
    if len(keys) != 1:
        fail("WIT kid")
    wit_claims = jwt.decode(wit, keys[0].key, algorithms=[header["alg"]],
                            options={"require": ["sub", "exp", "cnf"], "verify_aud": False})
    sub = wit_claims["sub"]
    if not sub.startswith(f"spiffe://{trust_domain}/"):
        fail("WIT trust domain")
    cnf = wit_claims["cnf"]["jwk"]
    if "alg" not in cnf:
        fail("cnf.jwk.alg")
    proof_header = jwt.get_unverified_header(wpt)
    if proof_header.get("typ") != "wpt+jwt" or proof_header.get("alg") != cnf["alg"]:
        fail("WPT typ or alg")
    proof_key = jwt.PyJWK(cnf)
    proof = jwt.decode(wpt, proof_key.key, algorithms=[cnf["alg"]], audience=target_uri,
                       options={"require": ["aud", "exp", "jti", "wth"]})
    if proof["exp"] > time.time() + 300:
        fail("WPT lifetime")
    if proof["wth"] != token_hash(wit):
        fail("wth")
    if (access_token is None) != ("ath" not in proof):
        fail("ath presence")
    if access_token is not None and proof["ath"] != token_hash(access_token):
        fail("ath")
    print(json.dumps({"wit": wit_claims, "wpt": proof}))


def jwt_svid(alg, audience):
    now = int(time.time())
    key, jwk = new_key(alg)
    jwk["use"] = "jwt-svid"
    jwk["kid"] = "py-" + uuid.uuid4().hex[:8]
    _, x509 = new_key("ES256")
    x509["use"] = "x509-svid"
    svid = jwt.encode(
        {"sub": "spiffe://py.example/ns/peer/sa/client", "aud": [audience], "iat": now,
         "exp": now + 300},
        key, algorithm=alg, headers={"kid": jwk["kid"], "typ": "JWT"})
    bundle = {"keys": [jwk, x509], "spiffe_sequence": 1, "spiffe_refresh_hint": 300}
    print(json.dumps({"bundle": bundle, "svid": svid}))


if __name__ == "__main__":
    mode, *args = sys.argv[1:]
    {"mint": mint, "verify": verify, "jwt-svid": jwt_svid}[mode](*args)
