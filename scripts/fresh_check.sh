#!/usr/bin/env bash
# fresh_check.sh: runs the README's two quick-start commands on a brand-new
# Debian 12 (bookworm) root, the check to do before resolving an issue that
# touches the build, the tests or the quick start. Not run by CI.
#
#   bash scripts/fresh_check.sh [--shared [DIR]] [--keep] [--root DIR] [--no-site-ca]
#
# It builds a minimal bookworm root with debootstrap under /var/tmp, clones
# this repository's committed HEAD into it as /work/vkinfer (uncommitted
# changes are not tested), and with --shared mounts DIR (default: ../shared
# beside this checkout) read-only at /work/shared, where the tests look for it.
# Inside, as root with a bare environment, it runs
#   1. bash scripts/run.sh on a free port (VKI_PORT=0), waits for the printed
#      URL's /health to answer 200, then stops the server with SIGTERM;
#   2. bash scripts/test.sh,
# and prints each command's exit status and ctest's summary lines. The root
# is removed at the end unless --keep. Needs root (debootstrap, chroot,
# mount), network access to deb.debian.org and PyPI, and about 4 GB of disk.
# This machine's /usr/local/share/ca-certificates/*.crt are copied in unless
# --no-site-ca. VKI_FRESH_MIRROR picks another Debian mirror; VKI_JOBS is
# passed through.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
shared=""; keep=0; base=/var/tmp; site_ca=1
while [ $# -gt 0 ]; do
  case "$1" in
    --shared)
      shared="$repo/../shared"
      if [ $# -gt 1 ] && [ "${2#-}" = "$2" ]; then shared="$2"; shift; fi ;;
    --keep) keep=1 ;;
    --no-site-ca) site_ca=0 ;;
    --root) base="$2"; shift ;;
    -h|--help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "fresh_check: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
[ "$(id -u)" -eq 0 ] || { echo "fresh_check: needs root (debootstrap, chroot, mount)" >&2; exit 2; }
if [ -n "$shared" ]; then
  shared="$(cd "$shared" && pwd)" || { echo "fresh_check: no shared folder there" >&2; exit 2; }
fi
need=()
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v curl >/dev/null || need+=(curl)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
fi

mirror="${VKI_FRESH_MIRROR:-http://deb.debian.org/debian}"
root="$(mktemp -d "$base/vkinfer-fresh.XXXXXX")"; chmod 755 "$root"
logs="$root.logs"; mkdir -p "$logs"
mounts=()
cleanup() {
  local pid
  # Processes still running in the root (all started by this script).
  for p in /proc/[0-9]*; do
    [ "$(readlink "$p/root" 2>/dev/null)" = "$root" ] || continue
    pid="${p#/proc/}"; echo "fresh_check: stopping leftover process $pid" >&2
    kill -KILL "$pid" 2>/dev/null || true
  done
  sleep 1
  for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do umount -R "${mounts[$i]}" 2>/dev/null || umount -lR "${mounts[$i]}" || true; done
  if findmnt -rn -o TARGET | grep -qF "$root/"; then
    echo "fresh_check: mounts remain under $root; not removing it" >&2
  elif [ "$keep" -eq 0 ]; then
    rm -rf "$root"
  else
    echo "fresh_check: kept $root" >&2
  fi
  echo "fresh_check: logs in $logs" >&2
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "fresh_check: debootstrap bookworm (minbase) into $root" >&2
debootstrap --variant=minbase bookworm "$root" "$mirror" >"$logs/debootstrap.log" 2>&1 \
  || { tail -n 20 "$logs/debootstrap.log"; exit 1; }
# What a fresh install's apt sources hold: the release, its updates, security.
cat >"$root/etc/apt/sources.list" <<EOF
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb http://deb.debian.org/debian-security bookworm-security main
EOF
cp /etc/resolv.conf "$root/etc/resolv.conf"
# debootstrap writes no /etc/hosts, which every installed Debian has (the
# installer writes it): without it "localhost" does not resolve, and
# Selenium, which reaches chromedriver at localhost, cannot start a browser.
[ -f "$root/etc/hosts" ] || printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' >"$root/etc/hosts"
# This site's own CA certificates (e.g. a TLS-inspecting egress proxy), which a
# machine on this network needs to reach PyPI: they are not part of a fresh
# install nor of what deps.sh installs. ca-certificates (installed by deps.sh)
# adds them to the system bundle. --no-site-ca leaves them out.
if [ "$site_ca" -eq 1 ] && compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
  mkdir -p "$root/usr/local/share/ca-certificates"
  cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
  echo "fresh_check: site CA certificates copied in: $(cd /usr/local/share/ca-certificates && echo *.crt)" >&2
fi

mount -t proc proc "$root/proc"; mounts+=("$root/proc")
mount -t sysfs sysfs "$root/sys"; mounts+=("$root/sys")
mount --rbind /dev "$root/dev"; mount --make-rslave "$root/dev"; mounts+=("$root/dev")
mkdir -p "$root/work"
git clone -q "$repo" "$root/work/vkinfer"
head="$(git -C "$root/work/vkinfer" log -1 --format='%h %s' | cut -c1-100)"
if [ -n "$shared" ]; then
  mkdir -p "$root/work/shared"
  mount --bind "$shared" "$root/work/shared"; mounts+=("$root/work/shared")
  mount -o remount,bind,ro "$root/work/shared"
fi
echo "fresh_check: testing $head; ../shared: ${shared:-absent}" >&2

# A root login's environment: no XDG_RUNTIME_DIR, nothing from this shell.
in_root=(chroot "$root" /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM=dumb
         PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
         ${VKI_JOBS:+VKI_JOBS=$VKI_JOBS} /bin/bash -c)

# 1. run.sh: the first build happens here; wait for the server's /health.
# setsid, chroot, env and both bashes exec in turn, so $! ends as the server.
echo "fresh_check: bash scripts/run.sh (log: $logs/run.log)" >&2
: >"$logs/run.log"
setsid "${in_root[@]}" 'cd /work/vkinfer && VKI_PORT=0 exec bash scripts/run.sh' >"$logs/run.log" 2>&1 &
run_pid=$!
run_status="" ; healthy=0
deadline=$((SECONDS + ${VKI_FRESH_RUN_TIMEOUT:-3600}))
while [ $SECONDS -lt $deadline ]; do
  if ! kill -0 "$run_pid" 2>/dev/null; then
    wait "$run_pid" && run_status=0 || run_status=$?
    break
  fi
  url="$(sed -n 's|^vkinfer: serving on \(http://[^ ]*\) .*|\1|p' "$logs/run.log" | head -n1)"
  if [ -n "$url" ] && [ "$(curl -s -o "$logs/health.json" -w '%{http_code}' "$url/health")" = 200 ]; then
    healthy=1
    echo "fresh_check: $url/health answered 200: $(head -c 300 "$logs/health.json")" >&2
    break
  fi
  sleep 2
done
run_how="exited by itself"
if [ -z "$run_status" ]; then
  # A healthy run.sh is the server itself; one still building is a group.
  run_how="after SIGTERM"
  if [ "$healthy" -eq 1 ]; then kill -TERM "$run_pid"; else kill -TERM -- "-$run_pid"; fi 2>/dev/null || true
  for _ in $(seq 30); do kill -0 "$run_pid" 2>/dev/null || break; sleep 1; done
  kill -0 "$run_pid" 2>/dev/null && kill -KILL -- "-$run_pid" 2>/dev/null
  wait "$run_pid" && run_status=0 || run_status=$?
fi
[ "$healthy" -eq 1 ] || tail -n 30 "$logs/run.log"

# 2. test.sh: both ctest passes.
echo "fresh_check: bash scripts/test.sh (log: $logs/test.log)" >&2
"${in_root[@]}" 'cd /work/vkinfer && bash scripts/test.sh' >"$logs/test.log" 2>&1 && test_status=0 || test_status=$?

echo
echo "== fresh_check: $head; ../shared: ${shared:-absent} =="
echo "bash scripts/run.sh:  exit $run_status ($run_how); /health $([ $healthy -eq 1 ] && echo "answered 200" || echo "never answered 200")"
echo "bash scripts/test.sh: exit $test_status"
awk 'function flush() { if (n) print "  skipped (" n "): " names; n = 0; names = "" }
     /^== the same tests under ASan/ { flush(); list = ""; print "-- ASan + UBSan pass:"; next }
     /tests passed, .* tests failed out of/ { print; next }
     /^The following tests did not run:/ { list = "skip"; next }
     /^The following tests FAILED:/ { flush(); list = "fail"; print; next }
     list == "skip" && /^[[:space:]]+[0-9]+ - / { n++; names = names (n > 1 ? " " : "") $3; next }
     list == "fail" && /^[[:space:]]+[0-9]+ - / { print; next }
     { flush(); list = "" }
     END { flush() }' "$logs/test.log"
[ "$healthy" -eq 1 ] && [ "$run_status" -eq 0 ] && [ "$test_status" -eq 0 ]
