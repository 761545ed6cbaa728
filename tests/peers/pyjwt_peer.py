"""PyJWT as a peer of svcauth.

    python pyjwt_peer.py verify <jwks_url> <aud> <iss> <token>  -> prints the verified claims
    python pyjwt_peer.py mint <alg> <aud> <iss>                 -> prints {"jwks": ..., "token": ...}
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


def mint(alg, audience, issuer):
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
    token = jwt.encode(claims, private, algorithm=alg, headers={"kid": jwk["kid"], "typ": "JWT"})
    print(json.dumps({"jwks": {"keys": [jwk]}, "token": token}))


if __name__ == "__main__":
    mode, *args = sys.argv[1:]
    {"verify": verify, "mint": mint}[mode](*args)
