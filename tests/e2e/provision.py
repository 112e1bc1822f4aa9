#!/usr/bin/env python3
"""Provision a Cognito emulator through the real Cognito API and sign users in.

Creates a user pool with an app client (USER_PASSWORD_AUTH + REFRESH_TOKEN_AUTH), groups
admin/editors/readers, users alice (admin), bob (editors), carol (readers) and dave (no group),
and a second pool with one user (for "a token from another pool"). Signs everyone in, checks
the tokens against the emulator's JWKS (kid present, RS256 signature valid) and writes a JSON
file the proxy cases read.

    provision.py --emulator moto --endpoint http://127.0.0.1:PORT --out tokens.json
"""

import argparse
import base64
import json
import sys
import time
import urllib.request

import boto3
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

REGION = "us-east-1"
PASSWORD = "Passw0rd!e2e-Poolgate"
GROUPS = ["admin", "editors", "readers"]
USERS = {"alice": "admin", "bob": "editors", "carol": "readers", "dave": None}


def b64url_decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def decode(token: str):
    """(header, payload) of a JWS, or None for an opaque token."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    return json.loads(b64url_decode(parts[0])), json.loads(b64url_decode(parts[1]))


def client(endpoint: str):
    return boto3.client(
        "cognito-idp",
        region_name=REGION,
        endpoint_url=endpoint,
        aws_access_key_id="e2e",
        aws_secret_access_key="e2e",
    )


def make_pool(idp, name: str, users: dict):
    pool_id = idp.create_user_pool(PoolName=name)["UserPool"]["Id"]
    client_id = idp.create_user_pool_client(
        UserPoolId=pool_id,
        ClientName=f"{name}-web",
        ExplicitAuthFlows=["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
    )["UserPoolClient"]["ClientId"]
    for group in sorted({g for g in users.values() if g}):
        idp.create_group(UserPoolId=pool_id, GroupName=group)
    signed_in = {}
    for user, group in users.items():
        idp.admin_create_user(UserPoolId=pool_id, Username=user, MessageAction="SUPPRESS")
        idp.admin_set_user_password(
            UserPoolId=pool_id, Username=user, Password=PASSWORD, Permanent=True
        )
        if group:
            idp.admin_add_user_to_group(UserPoolId=pool_id, Username=user, GroupName=group)
        auth = idp.initiate_auth(
            ClientId=client_id,
            AuthFlow="USER_PASSWORD_AUTH",
            AuthParameters={"USERNAME": user, "PASSWORD": PASSWORD},
        )["AuthenticationResult"]
        access = decode(auth["AccessToken"])
        signed_in[user] = {
            "group": group,
            "sub": access[1]["sub"] if access else None,
            "id": auth["IdToken"],
            "access": auth["AccessToken"],
            "refresh": auth["RefreshToken"],
        }
    return pool_id, client_id, signed_in


def fetch_json(url: str):
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.load(resp)


def rsa_verify(token: str, jwk: dict) -> bool:
    head, payload, sig = token.split(".")
    key = rsa.RSAPublicNumbers(
        int.from_bytes(b64url_decode(jwk["e"]), "big"),
        int.from_bytes(b64url_decode(jwk["n"]), "big"),
    ).public_key()
    try:
        key.verify(b64url_decode(sig), f"{head}.{payload}".encode(), padding.PKCS1v15(), hashes.SHA256())
        return True
    except Exception:  # cryptography raises InvalidSignature; anything else is a failure too
        return False


def check_tokens(users: dict, jwks: dict, issuer: str, client_id: str) -> list:
    """Problems found in the signed-in tokens (empty when all is as poolgate expects)."""
    problems = []
    keys = {k.get("kid"): k for k in jwks.get("keys", [])}
    for user, info in users.items():
        for kind, want_use in (("access", "access"), ("id", "id")):
            decoded = decode(info[kind])
            if decoded is None:
                problems.append(f"{user} {kind}: not a JWS")
                continue
            header, claims = decoded
            jwk = keys.get(header.get("kid"))
            if header.get("alg") != "RS256":
                problems.append(f"{user} {kind}: alg {header.get('alg')}")
            if jwk is None:
                problems.append(f"{user} {kind}: kid {header.get('kid')!r} not in JWKS {sorted(keys)}")
            elif not rsa_verify(info[kind], jwk):
                problems.append(f"{user} {kind}: signature does not verify against the JWKS")
            if claims.get("iss") != issuer:
                problems.append(f"{user} {kind}: iss {claims.get('iss')!r} != {issuer!r}")
            if claims.get("token_use") != want_use:
                problems.append(f"{user} {kind}: token_use {claims.get('token_use')!r}")
            got_client = claims.get("client_id") if kind == "access" else claims.get("aud")
            if got_client != client_id:
                problems.append(f"{user} {kind}: client {got_client!r} != {client_id!r}")
            groups = claims.get("cognito:groups")
            if info["group"] and groups != [info["group"]]:
                problems.append(f"{user} {kind}: cognito:groups {groups!r}")
            if int(claims.get("exp", 0)) <= time.time():
                problems.append(f"{user} {kind}: already expired")
    return problems


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--emulator", choices=["moto", "cognito-local"], required=True)
    ap.add_argument("--endpoint", required=True, help="http://127.0.0.1:PORT")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    endpoint = args.endpoint.rstrip("/")

    idp = client(endpoint)
    started = time.monotonic()
    pool_id, client_id, users = make_pool(idp, "poolgate-e2e", USERS)
    other_pool, other_client, other_users = make_pool(idp, "poolgate-e2e-other", {"erin": None})

    # The issuer is whatever the emulator writes into `iss`, not what we would guess.
    issuer = decode(users["alice"]["access"])[1]["iss"]
    other_issuer = decode(other_users["erin"]["access"])[1]["iss"]
    if args.emulator == "moto":
        # moto signs with an AWS-shaped `iss` but serves the JWKS itself.
        jwks_url = f"{endpoint}/{pool_id}/.well-known/jwks.json"
        other_jwks = f"{endpoint}/{other_pool}/.well-known/jwks.json"
    else:
        jwks_url = f"{issuer}/.well-known/jwks.json"
        other_jwks = f"{other_issuer}/.well-known/jwks.json"

    jwks = fetch_json(jwks_url)
    problems = check_tokens(users, jwks, issuer, client_id)
    problems += check_tokens(other_users, fetch_json(other_jwks), other_issuer, other_client)
    refreshed = idp.initiate_auth(
        ClientId=client_id,
        AuthFlow="REFRESH_TOKEN_AUTH",
        AuthParameters={"REFRESH_TOKEN": users["alice"]["refresh"]},
    )["AuthenticationResult"]
    if "AccessToken" not in refreshed:
        problems.append("REFRESH_TOKEN_AUTH returned no access token")

    out = {
        "emulator": args.emulator,
        "endpoint": endpoint,
        "region": REGION,
        "pool_id": pool_id,
        "client_id": client_id,
        "issuer": issuer,
        "jwks_url": jwks_url,
        "jwks_kids": sorted(k.get("kid") for k in jwks.get("keys", [])),
        "users": users,
        "refreshed_access": refreshed.get("AccessToken"),
        "other_pool": {
            "pool_id": other_pool,
            "client_id": other_client,
            "issuer": other_issuer,
            "jwks_url": other_jwks,
            "users": other_users,
        },
    }
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(out, f, indent=2)

    print(f"{args.emulator}: pool {pool_id}, client {client_id}, provisioned in {time.monotonic() - started:.1f}s")
    print(f"  iss      {issuer}")
    print(f"  jwks_url {jwks_url}  kids {out['jwks_kids']}")
    for kind in ("access", "id", "refresh"):
        decoded = decode(users["alice"][kind])
        if decoded is None:
            print(f"  alice {kind:<7} opaque ({len(users['alice'][kind])} chars)")
        else:
            header, claims = decoded
            print(f"  alice {kind:<7} header {json.dumps(header, sort_keys=True)}")
            print(f"  {'':13} claims {json.dumps(claims, sort_keys=True)}")
    dave = decode(users["dave"]["access"])
    print(f"  dave (no group) has cognito:groups: {'cognito:groups' in dave[1] if dave else 'n/a'}")
    for p in problems:
        print(f"  PROBLEM {p}")
    print(f"provision {args.emulator}: {'FAILED' if problems else 'ok'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
