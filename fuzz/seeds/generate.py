#!/usr/bin/env python3
"""Writes the seed corpora of redirect_target, session_cookie, jwt_verify and
config_load (normalize_rules keeps its hand-written seeds).

    python3 fuzz/seeds/generate.py

Seeds are committed; rerunning rewrites them (ids, keys and signatures are
fresh each time). Needs the `cryptography` package for the raw JWT seeds,
which are signed by throwaway keys under the harness's kids: they parse,
select a key and fail only at the signature.
"""

import base64
import json
import os
import pathlib
import shutil

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def write(target: str, seeds: dict) -> None:
    folder = HERE / target
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir()
    for name, data in seeds.items():
        if isinstance(data, str):
            data = data.encode()
        (folder / name).write_bytes(data)


def redirect_seeds() -> dict:
    return {
        "root": "/",
        "path_query_fragment": "/dashboard?tab=1&next=%2Fx#top",
        "params": "/a/b;p=1/c",
        "allowed_host": "https://docs.example.com/guide?x=1",
        "allowed_wildcard": "https://team.apps.example.com/",
        "same_origin_absolute": "https://app.example.com/x",
        "http_same_origin": "http://app.example.com:8080/x",
        "scheme_relative": "//evil.com",
        "slash_backslash": "/\\evil.com",
        "backslashes": "\\/\\/evil.com",
        "scheme_no_slashes": "https:evil.com",
        "encoded_tab": "/%09/evil.com",
        "raw_tab": "/\t/evil.com",
        "raw_newline": "/\n/evil.com",
        "encoded_slashes": "/%2F%2Fevil.com",
        "userinfo": "https://app.example.com@evil.com/",
        "two_labels": "https://a.b.apps.example.com/",
        "javascript": "javascript:alert(1)",
        "dot_segment": "/.//evil.com",
        "idn_lookalike": "https://d\u043ecs.example.com/",
    }


def session_id() -> str:
    return b64(os.urandom(32))


def sealed_like() -> str:
    # VERSION || nonce || ciphertext || tag, random: the shape of login state.
    return b64(b"\x01" + os.urandom(12 + 48 + 16))


def cookie_seeds() -> dict:
    sid, other = session_id(), session_id()
    login = "__Secure-portcullis_login_q8Jd0fZ2LmXv7RkT"
    non_canonical = sid[:42] + "B"  # low bits of the last character set
    state = {"state": "q8Jd0fZ2LmXv7RkTn3YwA5sC9eHgUbPi", "nonce": "n", "rd": "/"}
    return {
        "host_session": f"__Host-portcullis={sid}",
        "among_others": f"theme=dark; __Host-portcullis={sid}; lang=en",
        "two_session_cookies": f"__Host-portcullis={sid}; __Host-portcullis={other}",
        "two_headers": f"theme=dark\n__Host-portcullis={sid}",
        "plain_http": f"portcullis={sid}",
        "secure_domain": f"__Secure-sid={sid}",
        "padded": f"__Host-portcullis={sid}=",
        "too_long": f"__Host-portcullis={sid}A",
        "standard_alphabet": f"__Host-portcullis={sid[:40]}+/+",
        "quoted": f'__Host-portcullis="{sid}"',
        "spaces": f"  __Host-portcullis = {sid} ;",
        "non_canonical": f"__Host-portcullis={non_canonical}",
        "login_state": f"{login}={sealed_like()}; __Host-portcullis={sid}",
        "bare_id": sid,
        "utf8": "__Host-portcullis=\u00e9t\u00e9".encode() + b"\xff",
        "seal_state": "seal:" + json.dumps(state),
    }


ISSUER = "https://idp.fuzz.test/"
GOOD = {
    "iss": ISSUER,
    "aud": "portcullis",
    "sub": "alice",
    "exp": 1700000600,
    "iat": 1699999990,
    "nbf": 1699999990,
    "roles": ["admin"],
}


def claims(**changes) -> bytes:
    c = dict(GOOD)
    for key, value in changes.items():
        if value is None:
            c.pop(key, None)
        else:
            c[key] = value
    return json.dumps(c, separators=(",", ":")).encode()


def jwt_seeds() -> dict:
    # 0x01 ALG FLAGS CLAIMS: ALG 0 EdDSA, 1 ES256, 2 RS256, 3 PS256 (+0x80: no kid);
    # FLAGS bit 0 require_exp, bit 1 max age, bits 2-4 typ (1 JWT, 2 at+jwt, 4 id_token).
    seeds = {
        "signed_good_eddsa": b"\x01\x00\x07" + claims(),
        "signed_good_es256_no_kid": b"\x01\x81\x0b" + claims(),
        "signed_good_rs256": b"\x01\x02\x03" + claims(),
        "signed_aud_array": b"\x01\x00\x03" + claims(aud=["other", "portcullis"]),
        "signed_expired": b"\x01\x00\x03" + claims(exp=1699999000),
        "signed_exp_fraction": b"\x01\x00\x03" + claims(exp=1699999940.5),
        "signed_exp_string": b"\x01\x00\x03" + claims(exp="1700000600"),
        "signed_no_exp": b"\x01\x00\x02" + claims(exp=None),
        "signed_nbf_future": b"\x01\x00\x03" + claims(nbf=1700000100),
        "signed_id_token": b"\x01\x00\x13" + claims(nonce="n-0S6_WzA2Mj"),
        "signed_wrong_issuer": b"\x01\x00\x03" + claims(iss="https://idp.fuzz.test"),
        "signed_not_object": b"\x01\x00\x03" + b'["iss"]',
    }
    header = json.dumps({"alg": "EdDSA", "kid": "ed-1", "typ": "at+jwt"}).encode()
    seeds["signed_header"] = b"\x02\x00" + bytes([len(header)]) + header + claims()
    header = json.dumps({"alg": "RS256", "kid": "ed-1"}).encode()
    seeds["signed_header_wrong_alg"] = b"\x02\x00" + bytes([len(header)]) + header + claims()
    # 0x04 ALG FLAGS ISS AUD EXP NBF IAT SUB NONCE [EXTRA]: shape 0 is right for
    # iss, aud, exp and sub; 0 is "absent" for nbf, iat and nonce.
    seeds["shaped_good"] = bytes([4, 0, 0x07, 0, 0, 0, 1, 1, 0, 0])
    seeds["shaped_aud_mixed_array"] = bytes([4, 1, 0x03, 0, 7, 0, 0, 0, 0, 0])
    seeds["shaped_time_boundaries"] = bytes([4, 0, 0x03, 0, 3, 10, 5, 3, 0, 0])
    seeds["shaped_duplicate_iss"] = bytes([4, 0, 0x03, 0, 0, 0, 0, 0, 0, 0]) + b'"iss":"https://evil.test/"'
    # 0x03 ATTACK FLAGS [CLAIMS]: empty claims mean the good ones.
    for attack, name in [(0, "none"), (2, "hs256_rsa_pem"), (6, "psychic_zero"),
                         (8, "embedded_jwk"), (9, "other_key_real_kid"),
                         (11, "rsa_sig_ec_kid"), (18, "crit")]:
        seeds[f"forgery_{name}"] = bytes([3, attack, 3])
    seeds.update(raw_tokens())
    return seeds


def sign_raw(header: dict, body: bytes, signer) -> str:
    signing_input = b64(json.dumps(header).encode()) + "." + b64(body)
    return signing_input + "." + b64(signer(signing_input.encode()))


def raw_tokens() -> dict:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    ed_key = ed25519.Ed25519PrivateKey.generate()

    def es256(data: bytes) -> bytes:
        r, s = decode_dss_signature(ec_key.sign(data, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    body = claims()
    rs = sign_raw({"alg": "RS256", "kid": "rsa-1", "typ": "JWT"}, body,
                  lambda d: rsa_key.sign(d, padding.PKCS1v15(), hashes.SHA256()))
    return {
        "raw_rs256": rs,
        "raw_es256": sign_raw({"alg": "ES256", "kid": "ec-1"}, body, es256),
        "raw_eddsa": sign_raw({"alg": "EdDSA", "kid": "ed-1"}, body, ed_key.sign),
        "raw_alg_none": b64(b'{"alg":"none"}') + "." + b64(body) + ".",
        "raw_unknown_kid": sign_raw({"alg": "RS256", "kid": "rotated-2"}, body,
                                    lambda d: rsa_key.sign(d, padding.PKCS1v15(), hashes.SHA256())),
        "raw_two_parts": rs.rsplit(".", 1)[0],
        "raw_jwe_five_parts": rs + ".." + b64(b"tag"),
    }


def config_seeds() -> dict:
    seeds = {}
    for path in sorted((ROOT / "config").glob("*.toml")):
        seeds[path.stem] = path.read_bytes()
    seeds["yaml_minimal"] = (
        "---\nserver:\n  public_url: https://app.example.com\n"
        "upstream:\n  url: http://127.0.0.1:8080\n"
        "oidc:\n  issuer: https://idp.example.com/\n  client_id: app\n  client_secret: s3cret\n"
        "route:\n  - path: /health\n    auth: public\n"
    )
    base = (
        '[server]\npublic_url = "https://app.example.com"\n'
        '[upstream]\nurl = "http://127.0.0.1:8080"\n'
        '[oidc]\nissuer = "https://idp.example.com/"\nclient_id = "app"\nclient_secret = "s3cret"\n'
    )
    secret = base64.b64encode(bytes(range(32))).decode()
    seeds["redis_secrets"] = base + (
        f'[session]\nstore = "redis"\nredis_url = "redis://127.0.0.1:6379/0"\n'
        f'secret = "{secret}"\nprevious_secrets = ["{base64.b64encode(bytes(range(34))).decode()}"]\n'
    )
    seeds["routes"] = base + (
        '[[route]]\nhost = "*.example.com"\npath_regex = "/api/v[0-9]+/.*"\nmethods = ["GET"]\n'
        'auth = "bearer"\nroles_all = ["reader"]\n'
        '[[route]]\npath_exact = "/admin"\nroles_any = ["admin"]\nemail_domains = ["example.com"]\n'
        '[policy]\ndefault = "deny"\n'
    )
    seeds["unknown_key"] = base + '[server.extra]\npaht = "/x"\n'
    seeds["bad_values"] = base.replace('"https://app.example.com"', '"ftp://x"') + (
        '[session]\nidle_timeout = "forever"\n'
    )
    seeds["syntax_error"] = base + "[[route]\npath = \n"
    return seeds


def main() -> None:
    write("redirect_target", redirect_seeds())
    write("session_cookie", cookie_seeds())
    write("jwt_verify", jwt_seeds())
    write("config_load", config_seeds())


if __name__ == "__main__":
    main()
