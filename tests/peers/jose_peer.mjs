// node's `jose` as a peer of svcauth.
//   node jose_peer.mjs verify <jwks_url> <aud> <iss> <token>   -> prints the verified claims
//   node jose_peer.mjs mint <alg> <aud> <iss>                  -> prints {"jwks":..., "token":...}
import * as jose from 'jose';

const [mode, ...args] = process.argv.slice(2);

if (mode === 'verify') {
  const [jwksUrl, audience, issuer, token] = args;
  const jwks = jose.createRemoteJWKSet(new URL(jwksUrl));
  const { payload, protectedHeader } = await jose.jwtVerify(token, jwks, { audience, issuer });
  console.log(JSON.stringify({ payload, protectedHeader }));
} else if (mode === 'mint') {
  const [alg, audience, issuer] = args;
  const { publicKey, privateKey } = await jose.generateKeyPair(alg, { extractable: true });
  const jwk = await jose.exportJWK(publicKey);
  jwk.kid = await jose.calculateJwkThumbprint(jwk);
  jwk.alg = alg;
  jwk.use = 'sig';
  const token = await new jose.SignJWT({})
    .setProtectedHeader({ alg, kid: jwk.kid, typ: 'JWT' })
    .setIssuer(issuer)
    .setSubject('jose-client')
    .setAudience(audience)
    .setIssuedAt()
    .setExpirationTime('5m')
    .setJti(crypto.randomUUID())
    .sign(privateKey);
  console.log(JSON.stringify({ jwks: { keys: [jwk] }, token }));
} else {
  console.error('usage: jose_peer.mjs verify|mint ...');
  process.exit(2);
}
