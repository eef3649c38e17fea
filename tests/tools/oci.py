#!/usr/bin/env python3
"""Test helpers for the distribution tests (tests/all/distribution.rs), standard library plus
python3-cryptography. Everything listens on 127.0.0.1 only.

  oci.py layout DIR TAG FORMAT FILE [ARCH [BTFGEN]]
                                             write an OCI image layout holding FILE as a package
                                             of FORMAT: ecli, bumblebee, bpfman, gadget-ebpf,
                                             gadget-wasm, index (an index with s390x and ARCH);
                                             gadget-ebpf's btfgen layer is the file BTFGEN
                                             (IG's tar.gz of BTFHub-layout BTF files), else junk
  oci.py keygen PRIV PUB                     an ECDSA P-256 key pair (cosign's kind), PEM
  oci.py sign-layout DIR TAG KEY REF [DIGEST] add a cosign signature of DIR:TAG's manifest
                                             (tag sha256-<hex>.sig), signed with KEY for REF
                                             (or, forged, for another DIGEST)
  oci.py push-layout DIR TAG REGISTRY REPO   upload DIR:TAG (and its signature) to an
                                             anonymous registry at REGISTRY (host:port)
  oci.py ca DIR                              a test CA and a 127.0.0.1 server certificate
  oci.py https DIR PORT CERT KEY             serve DIR over HTTPS
  oci.py token PORT KEY CERT USERS ISSUER    a token realm for docker-registry's token auth
  oci.py hostile PORT DIR                    a registry and web server that misbehaves
  oci.py downgrade PORT CERT KEY HTTPPORT LOG an HTTPS registry and web server that point to
                                             plain HTTP (a token realm, redirects), and the
                                             plain HTTP server at HTTPPORT, which logs every
                                             request it gets (and its Authorization) to LOG
"""

import base64
import gzip
import hashlib
import http.server
import io
import json
import os
import ssl
import sys
import tarfile
import time
import urllib.request

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
INDEX = "application/vnd.oci.image.index.v1+json"
EMPTY = b"{}"


def digest(b):
    return "sha256:" + hashlib.sha256(b).hexdigest()


def put_blob(d, b):
    p = os.path.join(d, "blobs", "sha256")
    os.makedirs(p, exist_ok=True)
    with open(os.path.join(p, digest(b)[7:]), "wb") as f:
        f.write(b)
    return {"digest": digest(b), "size": len(b)}


def add_ref(d, tag, media_type, m):
    path = os.path.join(d, "index.json")
    idx = {"schemaVersion": 2, "manifests": []}
    if os.path.exists(path):
        idx = json.load(open(path))
    idx["manifests"] = [x for x in idx["manifests"]
                        if x.get("annotations", {}).get("org.opencontainers.image.ref.name") != tag]
    idx["manifests"].append(dict(mediaType=media_type, **put_blob(d, m),
                                 annotations={"org.opencontainers.image.ref.name": tag}))
    json.dump(idx, open(path, "w"))
    open(os.path.join(d, "oci-layout"), "w").write('{"imageLayoutVersion":"1.0.0"}')


def manifest(d, config_type, config, layers, annotations=None):
    m = {"schemaVersion": 2, "mediaType": MANIFEST,
         "config": dict(mediaType=config_type, **put_blob(d, config)),
         "layers": [dict(mediaType=t, **put_blob(d, b), **({"annotations": a} if a else {}))
                    for (t, b, a) in layers]}
    if annotations:
        m["annotations"] = annotations
    return json.dumps(m).encode()


def tar_gz(name, data):
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as t:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue())


def layout(d, tag, fmt, file, arch="amd64", btfgen=None):
    data = open(file, "rb").read()
    title = os.path.basename(file)
    if fmt == "ecli":
        m = manifest(d, "application/vnd.wasm.config.v1+json", EMPTY,
                     [("application/vnd.wasm.content.layer.v1+wasm", data, None)],
                     {"org.opencontainers.image.title": title})
    elif fmt == "bumblebee":
        m = manifest(d, "application/ebpf.oci.image.config.v1+json", EMPTY,
                     [("application/ebpf.oci.image.program.v1+binary", data, None)])
    elif fmt == "bpfman":
        cfg = json.dumps({"architecture": arch, "os": "linux", "config": {"Labels": {
            "io.ebpf.programs": '{"sig_trace":"tracepoint"}', "io.ebpf.maps": '{"sig_events":"perf_event_array"}'}},
            "rootfs": {"type": "layers", "diff_ids": []}}).encode()
        m = manifest(d, "application/vnd.oci.image.config.v1+json", cfg,
                     [("application/vnd.oci.image.layer.v1.tar+gzip", tar_gz(title, data), None)])
    elif fmt == "gadget-ebpf":
        m = manifest(d, "application/vnd.gadget.config.v1+yaml", b"name: test\n",
                     [("application/vnd.gadget.ebpf.program.v1+binary", data, None),
                      ("application/vnd.gadget.btfgen.v1+binary",
                       open(btfgen, "rb").read() if btfgen else b"btf", None)])
    elif fmt == "gadget-wasm":
        m = manifest(d, "application/vnd.gadget.config.v1+yaml", b"name: test\n",
                     [("application/vnd.gadget.wasm.program.v1+binary", data, None)])
    elif fmt == "index":
        mine = manifest(d, "application/ebpf.oci.image.config.v1+json", EMPTY,
                        [("application/ebpf.oci.image.program.v1+binary", data, None)])
        other = manifest(d, "application/ebpf.oci.image.config.v1+json", EMPTY,
                         [("application/ebpf.oci.image.program.v1+binary", b"\x7fELF not this one", None)])
        idx = {"schemaVersion": 2, "mediaType": INDEX, "manifests": [
            dict(mediaType=MANIFEST, **put_blob(d, other), platform={"architecture": "s390x", "os": "linux"}),
            dict(mediaType=MANIFEST, **put_blob(d, mine), platform={"architecture": arch, "os": "linux"})]}
        add_ref(d, tag, INDEX, json.dumps(idx).encode())
        return
    else:
        sys.exit("unknown format " + fmt)
    add_ref(d, tag, MANIFEST, m)


def keygen(priv, pub):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    k = ec.generate_private_key(ec.SECP256R1())
    open(priv, "wb").write(k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    open(pub, "wb").write(k.public_key().public_bytes(serialization.Encoding.PEM,
                                                      serialization.PublicFormat.SubjectPublicKeyInfo))


def find(d, tag):
    idx = json.load(open(os.path.join(d, "index.json")))
    for m in idx["manifests"]:
        if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag:
            return m
    sys.exit("no tag " + tag)


def sign_layout(d, tag, key, ref, for_digest=None):
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    k = serialization.load_pem_private_key(open(key, "rb").read(), None)
    target = find(d, tag)["digest"]
    payload = json.dumps({"critical": {"identity": {"docker-reference": ref},
                                       "image": {"docker-manifest-digest": for_digest or target},
                                       "type": "cosign container image signature"},
                          "optional": None}).encode()
    sig = base64.b64encode(k.sign(payload, ec.ECDSA(hashes.SHA256()))).decode()
    m = manifest(d, "application/vnd.oci.image.config.v1+json", b'{"architecture":"","config":{},"os":""}',
                 [("application/vnd.dev.cosign.simplesigning.v1+json", payload,
                   {"dev.cosignproject.cosign/signature": sig})])
    add_ref(d, target.replace(":", "-") + ".sig", MANIFEST, m)


def push_layout(d, tag, registry, repo):
    def req(method, url, body=None, headers=None):
        r = urllib.request.Request(url, data=body, method=method, headers=headers or {})
        return urllib.request.urlopen(r)

    def blob(dig):
        return open(os.path.join(d, "blobs", "sha256", dig[7:]), "rb").read()

    def push_blob(dig):
        loc = req("POST", f"http://{registry}/v2/{repo}/blobs/uploads/").headers["Location"]
        if loc.startswith("/"):
            loc = f"http://{registry}{loc}"
        sep = "&" if "?" in loc else "?"
        req("PUT", f"{loc}{sep}digest={dig}", blob(dig), {"Content-Type": "application/octet-stream"})

    def push_manifest(desc, name):
        m = blob(desc["digest"])
        j = json.loads(m)
        for x in [j.get("config")] + j.get("layers", []) + j.get("manifests", []):
            if x is None:
                continue
            if "manifests" in j:
                push_manifest(x, x["digest"])
            else:
                push_blob(x["digest"])
        req("PUT", f"http://{registry}/v2/{repo}/manifests/{name}", m, {"Content-Type": desc["mediaType"]})

    top = find(d, tag)
    push_manifest(top, tag)
    sig = top["digest"].replace(":", "-") + ".sig"
    idx = json.load(open(os.path.join(d, "index.json")))
    for m in idx["manifests"]:
        if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == sig:
            push_manifest(m, sig)


def ca(d):
    import datetime
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    import ipaddress
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "edge-ecli test CA")])
    ca_cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(ca_key.public_key())
               .serial_number(1).not_valid_before(now - datetime.timedelta(days=1))
               .not_valid_after(now + datetime.timedelta(days=30))
               .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                            content_commitment=False, key_encipherment=False,
                                            data_encipherment=False, key_agreement=False,
                                            encipher_only=False, decipher_only=False), critical=True)
               .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(name).public_key(key.public_key()).serial_number(2)
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                        x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    open(os.path.join(d, "ca.pem"), "wb").write(ca_cert.public_bytes(pem))
    open(os.path.join(d, "cert.pem"), "wb").write(cert.public_bytes(pem))
    open(os.path.join(d, "key.pem"), "wb").write(key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                                                  serialization.NoEncryption()))


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *a):
        pass


def https(d, port, cert, key):
    os.chdir(d)
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", int(port)), Quiet)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    srv.serve_forever()


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def token(port, key, cert, users, issuer):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
    k = serialization.load_pem_private_key(open(key, "rb").read(), None)
    der = x509.load_pem_x509_certificate(open(cert, "rb").read()).public_bytes(serialization.Encoding.DER)
    allowed = dict(l.strip().split(":", 1) for l in open(users) if ":" in l)

    class H(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):
            from urllib.parse import urlparse, parse_qs
            q = parse_qs(urlparse(self.path).query)
            auth = self.headers.get("Authorization", "")
            user = None
            if auth.startswith("Basic "):
                u, _, p = base64.b64decode(auth[6:]).decode().partition(":")
                if allowed.get(u) != p:
                    self.send_response(401)
                    self.end_headers()
                    return
                user = u
            access = []
            for scope in q.get("scope", []):
                typ, name, actions = scope.split(":")
                access.append({"type": typ, "name": name,
                               "actions": actions.split(",") if user else [a for a in actions.split(",") if a == "pull"]})
            now = int(time.time())
            header = {"typ": "JWT", "alg": "ES256", "x5c": [base64.b64encode(der).decode()]}
            claims = {"iss": issuer, "sub": user or "", "aud": q.get("service", [""])[0], "exp": now + 300,
                      "nbf": now - 10, "iat": now, "jti": str(now) + str(os.getpid()), "access": access}
            signing = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())
            r, s = decode_dss_signature(k.sign(signing.encode(), ec.ECDSA(hashes.SHA256())))
            jwt = signing + "." + b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))
            body = json.dumps({"token": jwt, "access_token": jwt, "expires_in": 300}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    http.server.ThreadingHTTPServer(("127.0.0.1", int(port)), H).serve_forever()


def hostile(port, d):
    """Repository names choose the misbehaviour: /v2/<case>/x/manifests/..."""
    good_layer = b"\x7fELF" + b"\0" * 60
    good_manifest = json.dumps({"schemaVersion": 2, "mediaType": MANIFEST,
                                "config": {"mediaType": "application/vnd.oci.empty.v1+json",
                                           "digest": digest(EMPTY), "size": 2},
                                "layers": [{"mediaType": "application/vnd.edge-ecli.bpf-object.v1+elf",
                                            "digest": digest(good_layer), "size": len(good_layer)}]}).encode()

    class H(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def send(self, code, body=b"", ctype="application/json", length=None, extra=()):
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body) if length is None else length))
            for k, v in extra:
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            parts = self.path.split("/")
            if self.path == "/v2/":
                return self.send(200, b"{}")
            if self.path.startswith("/files/"):
                return self.file(self.path[len("/files/"):])
            if len(parts) < 5 or parts[1] != "v2":
                return self.send(404, b'{"errors":[{"code":"NAME_UNKNOWN","message":"no"}]}')
            case, kind, what = parts[2], parts[-2], parts[-1]
            if case == "stall":
                time.sleep(30)
                return
            if case == "driphead":
                # A byte of the head every 300 ms, for ever: no read ever waits a second.
                return self.drip(b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 100000)
            if case == "dripbody" and kind == "blobs" and what != digest(EMPTY):
                return self.drip(b"HTTP/1.1 200 OK\r\nContent-Length: 64\r\n\r\n" + good_layer)
            if case == "loop":
                return self.send(307, extra=[("Location", self.path)])
            if case == "unauthorized":
                return self.send(401, b'{"errors":[{"code":"UNAUTHORIZED"}]}',
                                 extra=[("WWW-Authenticate", 'Basic realm="test"')])
            if case == "missing":
                return self.send(404, b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}')
            if kind == "manifests":
                if what.endswith(".sig"):
                    return self.send(404, b"{}")
                if case == "bigmanifest":
                    return self.send(200, b" " * (5 << 20), MANIFEST)
                if case == "badjson":
                    return self.send(200, b'{"schemaVersion": 2, "layers": [', MANIFEST)
                if case == "oddtypes":
                    m = good_manifest.replace(b"application/vnd.edge-ecli.bpf-object.v1+elf", b"application/x-mystery")
                    return self.send(200, m, MANIFEST)
                if case == "bigblob":
                    m = good_manifest.replace(digest(good_layer).encode(), digest(b"x" * (200 << 20)).encode()).replace(
                        b'"size": %d}' % len(good_layer), b'"size": %d}' % (200 << 20))
                    return self.send(200, m, MANIFEST)
                if case == "liarblob":
                    # The manifest says 64 bytes; the blob streams without end.
                    return self.send(200, good_manifest, MANIFEST)
                return self.send(200, good_manifest, MANIFEST)
            if kind == "blobs":
                if what == digest(EMPTY):
                    return self.send(200, EMPTY, "application/octet-stream")
                if case == "badsize":
                    return self.send(200, good_layer[:-4], "application/octet-stream")
                if case == "baddigest":
                    return self.send(200, b"\x7fELF" + b"\1" * 60, "application/octet-stream")
                if case == "truncated":
                    self.send(200, good_layer[:10], "application/octet-stream", length=len(good_layer))
                    self.wfile.flush()
                    self.close_connection = True
                    return
                if case == "liarblob":
                    self.send_response(200)
                    self.send_header("Content-Type", "application/octet-stream")
                    self.end_headers()
                    try:
                        for _ in range(1 << 16):
                            self.wfile.write(b"\0" * 65536)
                    except Exception:
                        pass
                    self.close_connection = True
                    return
                return self.send(200, good_layer, "application/octet-stream")
            return self.send(404)

        def drip(self, data):
            try:
                for b in data:
                    self.wfile.write(bytes([b]))
                    self.wfile.flush()
                    time.sleep(0.3)
            except Exception:
                pass
            self.close_connection = True

        def file(self, name):
            if name == "drip.json":
                return self.drip(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"{" * 100000)
            if name.startswith("loop"):
                return self.send(302, extra=[("Location", "/files/" + name)])
            if name == "stall.json":
                time.sleep(30)
                return
            p = os.path.join(d, os.path.basename(name))
            if not os.path.exists(p):
                return self.send(404, b"not found", "text/plain")
            return self.send(200, open(p, "rb").read(), "application/octet-stream")

    http.server.ThreadingHTTPServer(("127.0.0.1", int(port)), H).serve_forever()


def downgrade(port, cert, key, http_port, log):
    """HTTPS at PORT: /v2/... answers 401 with a Bearer realm on plain HTTP, /redirect/X
    redirects to http://127.0.0.1:HTTPPORT/X. Plain HTTP at HTTPPORT logs what reaches it."""
    import threading
    plain = f"http://127.0.0.1:{http_port}"

    class Tls(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def do_GET(self):
            if self.path.startswith("/v2/"):
                self.send_response(401)
                self.send_header("WWW-Authenticate", f'Bearer realm="{plain}/token",service="edge"')
            else:
                self.send_response(302)
                self.send_header("Location", plain + "/" + self.path.split("/")[-1])
            self.send_header("Content-Length", "0")
            self.end_headers()

    class Plain(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):
            with open(log, "a") as f:
                f.write(f"{self.path} Authorization={self.headers.get('Authorization', '')}\n")
            body = json.dumps({"token": "t0ken"}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    open(log, "w").close()
    p = http.server.ThreadingHTTPServer(("127.0.0.1", int(http_port)), Plain)
    threading.Thread(target=p.serve_forever, daemon=True).start()
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", int(port)), Tls)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    srv.serve_forever()


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    {"layout": layout, "keygen": keygen, "sign-layout": sign_layout, "push-layout": push_layout,
     "ca": ca, "https": https, "token": token, "hostile": hostile, "downgrade": downgrade}[cmd](*args)


if __name__ == "__main__":
    main()
