"""hub.py: a small imitation of the Hugging Face hub on loopback, for
`vkinfer pull` tests (stdlib only). It serves what the real hub serves to a
downloader:

  GET /api/models/REPO/tree/REV?recursive=true   JSON list of {type, path, size, oid[, lfs{oid,size,pointerSize}]},
                                                 paged with Link: <...&cursor=N>; rel="next"
  GET|HEAD /REPO/resolve/REV/PATH                small files: the bytes, ETag = git blob sha1;
                                                 LFS files: 302 to localhost/_cdn/..., with X-Linked-Etag (sha256)
                                                 and X-Linked-Size, as the hub sends its CDN's signed URLs
  errors                                         404 + X-Error-Code RepoNotFound / RevisionNotFound /
                                                 EntryNotFound; 401 + GatedRepo without the repo's token

Byte answers honour Range (206, Content-Range; 416 past the end). Knobs
(Hub.knobs, changed between test cases) make it misbehave: drop the
connection mid-file once, stall once, answer 503 n times, ignore Range,
publish a wrong sha256, page the listing, send no Content-Length. Hub.log records every request.

Run alone to try `vkinfer pull` by hand:
  python3 hub.py --port 8765 --repo gen/default=build/models/default.gguf
"""
import argparse
import hashlib
import http.server
import json
import os
import threading
import time
import urllib.parse

LFS_MIN = 1 << 20  # files this large, and every .gguf/.safetensors, are "in LFS"


def git_blob_sha1(data):
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class Hub:
    def __init__(self, repos):
        """repos: {"org/name": {"path/in/repo": "/local/file", ...}}"""
        self.repos = {}
        self.lock = threading.Lock()
        self.log = []
        self.knobs = {}
        self.reset()
        for repo, files in repos.items():
            self.add_repo(repo, files)

    def reset(self):
        with self.lock:
            self.log.clear()
            self.knobs = {
                "drop_once": set(),      # "repo/path": first byte answer sends half, then closes
                "stall_once": {},        # "repo/path": seconds to hang after the first 64 KiB, once
                "fail_503": {},          # "repo/path": answer 503 this many times first
                "ignore_range": False,   # answer 200 with the whole file whatever Range says
                "wrong_sha": set(),      # "repo/path": publish a sha256 that is not the file's
                "page_size": 1000,       # tree entries per page
                "gated": {},             # repo: the token it needs
                "extra_entries": {},     # repo: [listing entries added as they are (bad paths)]
                "no_length": set(),      # "repo/path": no Content-Length, the end is the connection's close
            }

    def add_repo(self, repo, files):
        entries = {}
        for path, local in files.items():
            with open(local, "rb") as f:
                data = f.read()
            lfs = len(data) >= LFS_MIN or path.endswith((".gguf", ".safetensors"))
            entries[path] = {"local": local, "size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                             "sha1": git_blob_sha1(data), "lfs": lfs}
        self.repos[repo] = entries

    def published_sha(self, repo, path):
        e = self.repos[repo][path]
        if repo + "/" + path in self.knobs["wrong_sha"]:
            return hashlib.sha256(b"not the file " + path.encode()).hexdigest()
        return e["sha256"]

    def tree(self, repo):
        out, dirs = [], set()
        for path, e in sorted(self.repos[repo].items()):
            parts = path.split("/")
            for i in range(1, len(parts)):
                d = "/".join(parts[:i])
                if d not in dirs:
                    dirs.add(d)
                    out.append({"type": "directory", "oid": "0" * 40, "size": 0, "path": d})
            item = {"type": "file", "oid": e["sha1"], "size": e["size"], "path": path}
            if e["lfs"]:
                item["lfs"] = {"oid": self.published_sha(repo, path), "size": e["size"], "pointerSize": 134}
            out.append(item)
        return out + self.knobs["extra_entries"].get(repo, [])


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    hub = None  # set by serve()

    def log_message(self, fmt, *args):
        pass

    def begin_record(self):
        """Logs the request before any answer goes out: a record appended
        after the answer could land after a test cleared the log once the
        client had exited (a gated pull's 401 then showed up, token-less,
        among the next pull's requests)."""
        self.entry = {"method": self.command, "path": self.path, "range": self.headers.get("Range"),
                      "auth": self.headers.get("Authorization"), "status": None, "sent": 0}
        with self.hub.lock:
            self.hub.log.append(self.entry)

    def record(self, status, sent=0):
        with self.hub.lock:
            self.entry["status"], self.entry["sent"] = status, sent

    def send_error_hub(self, status, code, message):
        body = json.dumps({"error": message}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if code:
            self.send_header("X-Error-Code", code)
        self.send_header("X-Error-Message", message)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.record(status)

    def split_repo(self, rest):
        """"org/name/..." -> ("org/name", "...") for a known repo, else (None, None)."""
        parts = rest.split("/")
        for n in (2, 1):
            repo = "/".join(parts[:n])
            if repo in self.hub.repos:
                return repo, "/".join(parts[n:])
        return None, None

    def authorized(self, repo):
        need = self.hub.knobs["gated"].get(repo)
        if need is None or self.headers.get("Authorization") == "Bearer " + need:
            return True
        self.send_error_hub(401, "GatedRepo", "Access to model %s is restricted." % repo)
        return False

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        self.begin_record()
        url = urllib.parse.urlsplit(self.path)
        path = urllib.parse.unquote(url.path)
        query = urllib.parse.parse_qs(url.query)
        if path.startswith("/api/models/"):
            return self.api_tree(path[len("/api/models/"):], query)
        if path.startswith("/_cdn/"):
            repo, rest = self.split_repo(path[len("/_cdn/"):])
            if repo is None or rest not in self.hub.repos[repo]:
                return self.send_error_hub(404, None, "no such object")
            return self.send_file(repo, rest)
        repo, rest = self.split_repo(path.lstrip("/"))
        if repo is None:
            return self.send_error_hub(404, "RepoNotFound", "Repository not found")
        if not rest.startswith("resolve/"):
            return self.send_error_hub(404, None, "not found")
        rev, _, fpath = rest[len("resolve/"):].partition("/")
        if not self.authorized(repo):
            return
        if rev != "main":
            return self.send_error_hub(404, "RevisionNotFound", "Invalid rev id: " + rev)
        e = self.hub.repos[repo].get(fpath)
        if e is None:
            return self.send_error_hub(404, "EntryNotFound", "Entry not found")
        if e["lfs"]:
            self.send_response(302)
            # Another host name for the same server, as the hub's CDN is
            # another host: a client must not send its token there.
            self.send_header("Location", "http://localhost:%d/_cdn/%s/%s?signature=x" % (
                self.server.server_address[1], repo, urllib.parse.quote(fpath)))
            self.send_header("X-Linked-Etag", '"%s"' % self.hub.published_sha(repo, fpath))
            self.send_header("X-Linked-Size", str(e["size"]))
            self.send_header("X-Repo-Commit", "1" * 40)
            self.send_header("Content-Length", "0")
            self.end_headers()
            self.record(302)
            return
        self.send_file(repo, fpath, etag=e["sha1"])

    def api_tree(self, rest, query):
        if "/tree/" not in rest:
            return self.send_error_hub(404, None, "not found")
        repo, _, rev = rest.partition("/tree/")
        if repo not in self.hub.repos:
            return self.send_error_hub(404, "RepoNotFound", "Repository not found")
        if not self.authorized(repo):
            return
        if rev != "main":
            return self.send_error_hub(404, "RevisionNotFound", "Invalid rev id: " + rev)
        entries = self.hub.tree(repo)
        page = self.hub.knobs["page_size"]
        start = int(query.get("cursor", ["0"])[0])
        body = json.dumps(entries[start:start + page]).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if start + page < len(entries):
            nxt = "http://%s:%d/api/models/%s/tree/%s?recursive=true&cursor=%d" % (
                self.server.server_address[0], self.server.server_address[1], repo, rev, start + page)
            self.send_header("Link", '<%s>; rel="next"' % nxt)
        self.end_headers()
        self.wfile.write(body)
        self.record(200, len(body))

    def send_file(self, repo, fpath, etag=None):
        key = repo + "/" + fpath
        knobs = self.hub.knobs
        with self.hub.lock:
            n503 = knobs["fail_503"].get(key, 0)
            if n503:
                knobs["fail_503"][key] = n503 - 1
        if n503:
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.send_header("Retry-After", "1")
            self.end_headers()
            self.record(503)
            return
        e = self.hub.repos[repo][fpath]
        size, start = e["size"], 0
        rng = self.headers.get("Range")
        status = 200
        if rng and not knobs["ignore_range"]:
            spec = rng.replace("bytes=", "").split("-")
            start = int(spec[0])
            end = int(spec[1]) + 1 if spec[1] else size
            if start >= size:
                self.send_response(416)
                self.send_header("Content-Range", "bytes */%d" % size)
                self.send_header("Content-Length", "0")
                self.end_headers()
                self.record(416)
                return
            status = 206
        else:
            end = size
        with open(e["local"], "rb") as f:
            f.seek(start)
            data = f.read(end - start)
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        if key in knobs["no_length"]:
            self.close_connection = True
        else:
            self.send_header("Content-Length", str(len(data)))
        self.send_header("Accept-Ranges", "bytes")
        if status == 206:
            self.send_header("Content-Range", "bytes %d-%d/%d" % (start, end - 1, size))
        if etag:
            self.send_header("ETag", '"%s"' % etag)
        else:
            self.send_header("X-Linked-Etag", '"%s"' % self.hub.published_sha(repo, fpath))
        self.end_headers()
        if self.command == "HEAD":
            self.record(status)
            return
        with self.hub.lock:
            drop = key in knobs["drop_once"]
            knobs["drop_once"].discard(key)
            stall = knobs["stall_once"].pop(key, None)
        if drop or stall:
            cut = len(data) // 2 if drop else min(len(data), 65536)
            try:
                self.wfile.write(data[:cut])
                self.wfile.flush()
                if stall:
                    time.sleep(stall)
            except OSError:
                pass
            self.record(status, cut)
            self.close_connection = True
            return
        try:
            self.wfile.write(data)
        except OSError:
            pass
        self.record(status, len(data))


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True


def serve(hub, port=0):
    """Starts the hub on 127.0.0.1 in a thread; returns (server, base URL)."""
    handler = type("BoundHandler", (Handler,), {"hub": hub})
    srv = Server(("127.0.0.1", port), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, "http://127.0.0.1:%d" % srv.server_address[1]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, default=8765)
    ap.add_argument("--repo", action="append", default=[],
                    help="ORG/NAME=FILE or ORG/NAME=FOLDER (every file in it), repeatable")
    a = ap.parse_args()
    repos = {}
    for spec in a.repo:
        name, _, local = spec.partition("=")
        if os.path.isdir(local):
            repos[name] = {os.path.relpath(os.path.join(d, f), local): os.path.join(d, f)
                           for d, _, fs in os.walk(local) for f in fs}
        else:
            repos[name] = {os.path.basename(local): local}
    srv, url = serve(Hub(repos), a.port)
    print("hub on %s (repos: %s); try: vkinfer pull --hub %s hf://%s" % (url, ", ".join(repos), url,
                                                                         next(iter(repos), "ORG/NAME")), flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        srv.shutdown()


if __name__ == "__main__":
    main()
