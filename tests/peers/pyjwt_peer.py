"""PyJWT as a peer of svcauth.

    python pyjwt_peer.py verify <jwks_url> <aud> <iss> <token>  -> prints the verified claims
    python pyjwt_peer.py mint <alg> <aud> <iss>                 -> prints {"jwks": ..., "token": ...}
    python pyjwt_peer.py mint-set <alg> <aud> <iss>             -> the same, and "expired" and
                                                                   "wrong_audience" tokens by the same key
    python pyjwt_peer.py verify-txn <jwks_url> <trust_domain> <token> -> a Txn-Token's header and claims
    python pyjwt_peer.py mint-txn <alg> <trust_domain> <iss>    -> {"jwks": ..., "token": ...}, a Txn-Token
"""
import json
import sys
import time
import uuid

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa


def verify(jwks_url, audience, issuer, token):
    client = jwt.PyJWKClient(jwks_url)
    key = client.get_signing_key_from_jwt(token)
    alg = jwt.get_unverified_header(token)["alg"]
    claims = jwt.decode(token, key.key, algorithms=[alg], audience=audience, issuer=issuer)
    print(json.dumps(claims))


TXN_REQUIRED = ["iat", "exp", "aud", "txn", "sub", "scope", "req_wl"]


def verify_txn(jwks_url, trust_domain, token):
    """draft-ietf-oauth-transaction-tokens: typ txntoken+jwt, aud the trust domain, the required claims."""
    header = jwt.get_unverified_header(token)
    if header.get("typ") != "txntoken+jwt":
        raise SystemExit(f"typ is {header.get('typ')!r}")
    key = jwt.PyJWKClient(jwks_url).get_signing_key_from_jwt(token)
    claims = jwt.decode(token, key.key, algorithms=[header["alg"]], audience=trust_domain,
                        options={"require": TXN_REQUIRED})
    print(json.dumps({"header": header, "claims": claims}))


def mint_txn(alg, trust_domain, issuer):
    """A Txn-Token as another stack's Transaction Token Service would sign it."""
    private, algorithm = new_key(alg)
    jwk = public_jwk(private, algorithm, alg)
    now = int(time.time())
    claims = {"iss": issuer, "iat": now, "exp": now + 120, "aud": trust_domain, "txn": str(uuid.uuid4()),
              "sub": "pyjwt-user", "scope": "trade.stocks", "req_wl": "pyjwt-gateway",
              "tctx": {"action": "BUY", "ticker": "MSFT", "quantity": "100"}, "rctx": {"req_ip": "69.151.72.123"}}
    token = jwt.encode(claims, private, algorithm=alg, headers={"kid": jwk["kid"], "typ": "txntoken+jwt"})
    print(json.dumps({"jwks": {"keys": [jwk]}, "token": token}))


def new_key(alg):
    if alg in ("RS256", "PS256"):
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return private, (jwt.algorithms.RSAAlgorithm if alg == "RS256" else jwt.algorithms.RSAPSSAlgorithm)
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1()), jwt.algorithms.ECAlgorithm
    if alg == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate(), jwt.algorithms.OKPAlgorithm
    raise SystemExit(f"unsupported alg {alg}")


def public_jwk(private, algorithm, alg):
    jwk = json.loads(algorithm.to_jwk(private.public_key()))
    jwk.update({"alg": alg, "use": "sig"})
    jwk["kid"] = jwt.PyJWK(jwk).key_id or f"pyjwt-{uuid.uuid4().hex[:8]}"
    return jwk


def mint(alg, audience, issuer, hostile=False):
    if alg in ("RS256", "PS256"):
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        algorithm = jwt.algorithms.RSAAlgorithm if alg == "RS256" else jwt.algorithms.RSAPSSAlgorithm
    elif alg == "ES256":
        private = ec.generate_private_key(ec.SECP256R1())
        algorithm = jwt.algorithms.ECAlgorithm
    elif alg == "EdDSA":
        private = ed25519.Ed25519PrivateKey.generate()
        algorithm = jwt.algorithms.OKPAlgorithm
    else:
        raise SystemExit(f"unsupported alg {alg}")
    jwk = json.loads(algorithm.to_jwk(private.public_key()))
    jwk.update({"alg": alg, "use": "sig"})
    jwk["kid"] = jwt.PyJWK(jwk).key_id or f"pyjwt-{uuid.uuid4().hex[:8]}"
    now = int(time.time())
    claims = {"iss": issuer, "sub": "pyjwt-client", "aud": audience, "iat": now, "exp": now + 300, "jti": uuid.uuid4().hex}
    headers = {"kid": jwk["kid"], "typ": "JWT"}
    out = {"jwks": {"keys": [jwk]}, "token": jwt.encode(claims, private, algorithm=alg, headers=headers)}
    if hostile:
        expired = dict(claims, iat=now - 900, exp=now - 600, jti=uuid.uuid4().hex)
        elsewhere = dict(claims, aud="https://elsewhere.internal", jti=uuid.uuid4().hex)
        out["expired"] = jwt.encode(expired, private, algorithm=alg, headers=headers)
        out["wrong_audience"] = jwt.encode(elsewhere, private, algorithm=alg, headers=headers)
    print(json.dumps(out))


def mint_set(alg, audience, issuer):
    mint(alg, audience, issuer, hostile=True)


if __name__ == "__main__":
    mode, *args = sys.argv[1:]
    {"verify": verify, "mint": mint, "mint-set": mint_set, "verify-txn": verify_txn,
     "mint-txn": mint_txn}[mode](*args)
