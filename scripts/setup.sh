#!/usr/bin/env bash
# Sets up anon_ros on a Debian 12 / Python 3.11 machine without a ROS apt repository:
#   1. Debian tools (compiler, cmake, PulseAudio, test data), installed when missing and we are root;
#   2. a virtualenv with the pinned ROS 2 Kilted wheels and Python dependencies, cached outside the clone and keyed
#      by the requirement files, so a clean clone (CI) reuses it;
#   3. the anon_ros_msgs interface package, built with cmake into that venv (keyed by its sources);
#   4. anon_ros itself with its launch/config files (keyed by its sources);
#   5. the exported detection models (scripts/build_models.sh, keyed by what they are built from).
# A second run with nothing changed only checks the stamps. Prints the venv path on stdout; logs go to stderr.
#
# Usage: scripts/setup.sh [--check]   (--check: report what is missing or broken, change nothing, exit 1 if not ready)
# Environment: ANON_ROS_CACHE (default ~/.cache/anon_ros), ANON_ROS_PYTHON (default python3.11, else python3),
#              ANON_ROS_DEBIAN_LIST (default requirements/debian.txt), ANON_ROS_SKIP_MODELS=1 to skip the models.
set -euo pipefail
CHECK=0
case "${1:-}" in
  --check) CHECK=1 ;;
  '') ;;
  *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${ANON_ROS_CACHE:-$HOME/.cache/anon_ros}
START=$SECONDS

log() { printf '[setup %3ds] %s\n' $((SECONDS - START)) "$*" >&2; }
die() { printf '[setup] error: %s\n' "$*" >&2; exit 1; }
hash_files() { (cd "$ROOT" && cat "$@" | sha256sum | cut -c1-16); }
pip_venv() {  # pip in the venv, without the warnings about this machine's absent local mirrors
  "$VENV/bin/python" -m pip --disable-pip-version-check "$@" 2> >(grep -v '^WARNING: Location .* is ignored' >&2)
}
hash_tree() {  # content hash of the files under the given paths that git tracks or would track
  (cd "$ROOT" && git ls-files -co --exclude-standard -- "$@" | LC_ALL=C sort | xargs -r sha256sum | sha256sum | cut -c1-16)
}

# One setup at a time per cache: a second one (another terminal, a test run) waits instead of racing the first
# while it builds, or deleting a venv it takes for broken.
if [ "$CHECK" = 0 ]; then
  mkdir -p "$CACHE"
  exec 9>"$CACHE/.setup.lock"
  if ! flock -n 9; then
    log "another setup is running on $CACHE; waiting for it"
    flock 9
  fi
fi

# --- 1. Python 3.11 ----------------------------------------------------------------------------------------------
PYTHON=${ANON_ROS_PYTHON:-}
if [ -z "$PYTHON" ]; then
  if command -v python3.11 >/dev/null 2>&1; then PYTHON=python3.11; else PYTHON=python3; fi
fi
command -v "$PYTHON" >/dev/null 2>&1 || die "no Python interpreter '$PYTHON' found; install Python 3.11 (Debian 12: apt-get install python3 python3-venv python3-dev) or set ANON_ROS_PYTHON"
PYVER=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
[ "$PYVER" = "3.11" ] || die "anon_ros needs Python 3.11 (the ROS 2 Kilted wheels are built for cp311), but $(command -v "$PYTHON") is Python $PYVER; install python3.11 or point ANON_ROS_PYTHON at one"
"$PYTHON" -c 'import venv, ensurepip' 2>/dev/null || die "$PYTHON lacks venv/ensurepip; on Debian: apt-get install python3-venv"

# --- 2. Debian packages ----------------------------------------------------------------------------------------
command -v dpkg >/dev/null 2>&1 || die "this setup script targets Debian 12 (dpkg not found); install the packages in requirements/debian.txt by hand and set up a Python 3.11 venv from requirements/*.txt"
missing=()
while read -r pkg _; do
  [ -z "$pkg" ] || [[ $pkg == \#* ]] && continue
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done < "${ANON_ROS_DEBIAN_LIST:-$ROOT/requirements/debian.txt}"
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$CHECK" = 1 ]; then
    die "missing Debian packages: ${missing[*]}; install them with: sudo apt-get install ${missing[*]} (or run scripts/setup.sh as root)"
  elif [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    log "installing missing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    aptlog=$(mktemp)
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >"$aptlog" 2>&1 \
      || { tail -20 "$aptlog" >&2; die "apt-get install ${missing[*]} failed (log above)"; }
    rm -f "$aptlog"
  else
    die "missing Debian packages: ${missing[*]}; install them with: sudo apt-get install ${missing[*]}"
  fi
fi

# --- 3. The cached virtualenv ------------------------------------------------------------------------------------
REQS=(requirements/ros.txt requirements/runtime.txt requirements/test.txt)
NO_DEPS_REQS=(requirements/peers.txt)  # installed with --no-deps (see the file)
PIP_VERSION=25.3
VENV_KEY=$( (hash_files "${REQS[@]}" "${NO_DEPS_REQS[@]}"; echo "pip==$PIP_VERSION") | sha256sum | cut -c1-12)
VENV="$CACHE/venv-py$PYVER-$VENV_KEY"
IMPORT_CHECK='import rclpy, sensor_msgs.msg, numpy, cv2, onnxruntime'
venv_ok() { [ -f "$VENV/.complete" ] && "$VENV/bin/python" -c "$IMPORT_CHECK" >/dev/null 2>&1; }
if [ "$CHECK" = 1 ]; then
  [ -d "$VENV" ] || die "the venv $VENV is not built yet; run scripts/setup.sh"
  venv_ok || die "the cached venv $VENV is broken or incomplete; run scripts/setup.sh to rebuild it"
  for key in "anon_ros_msgs-$(hash_tree anon_ros_msgs)" \
             "anon_ros-$(hash_tree anon_ros carla_bridge launch config resource setup.py setup.cfg package.xml)"; do
    [ -f "$VENV/.$key" ] || die "${key%-*} in $VENV is missing or older than the sources; run scripts/setup.sh"
  done
  log "ready: $VENV"
  echo "$VENV"
  exit 0
fi
mkdir -p "$CACHE"
if [ -d "$VENV" ] && ! venv_ok; then
  log "the cached venv $VENV is broken or incomplete (an interrupted setup, or a package removed by hand); rebuilding it"
  rm -rf "$VENV"
fi
if [ ! -d "$VENV" ]; then
  log "creating venv $VENV (pinned ROS 2 Kilted wheels + dependencies; a few minutes on a fresh machine)"
  "$PYTHON" -m venv "$VENV"
  pip_venv install -q --upgrade "pip==$PIP_VERSION" >&2
  for req in "${REQS[@]}"; do
    log "pip install -r $req"
    pip_venv install -q -r "$ROOT/$req" >&2 \
      || die "pip install -r $req failed (see above); nothing is cached, the next run starts again"
  done
  for req in "${NO_DEPS_REQS[@]}"; do
    log "pip install --no-deps -r $req"
    pip_venv install -q --no-deps -r "$ROOT/$req" >&2 || die "pip install --no-deps -r $req failed (see above)"
  done
  probe=$("$VENV/bin/python" -c "$IMPORT_CHECK" 2>&1) || die "the new venv cannot import its core packages: $probe"
  touch "$VENV/.complete"
fi

# --- 4. anon_ros_msgs (cmake + rosidl from the wheels) ------------------------------------------------------------
MSGS_KEY=$(hash_tree anon_ros_msgs)
if [ ! -f "$VENV/.anon_ros_msgs-$MSGS_KEY" ]; then
  log "building anon_ros_msgs into the venv"
  # The wheels' exported CMake files name the include dirs of the machine that built them; point them at ours.
  PYINC=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
  NPINC=$("$VENV/bin/python" -c 'import numpy; print(numpy.get_include())')
  [ -f "$PYINC/Python.h" ] || die "Python headers not found at $PYINC; on Debian: apt-get install python3-dev"
  # (grep finds nothing once they are fixed: a rebuild after a change to the messages must not stop here)
  { grep -rl '/opt/python/cp311-cp311' "$VENV"/share/*/cmake/ 2>/dev/null || true; } | while read -r f; do
    sed -i "s#/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include#$NPINC#g; s#/opt/python/cp311-cp311/include/python3.11#$PYINC#g" "$f"
  done
  BUILD=$(mktemp -d "${TMPDIR:-/tmp}/anon_ros_msgs.XXXXXX")
  trap 'rm -rf "$BUILD"' EXIT
  (
    export AMENT_PREFIX_PATH="$VENV" PATH="$VENV/bin:$PATH"
    cmake -S "$ROOT/anon_ros_msgs" -B "$BUILD" -DCMAKE_PREFIX_PATH="$VENV" -DCMAKE_INSTALL_PREFIX="$VENV" \
      -DPython3_EXECUTABLE="$VENV/bin/python" -DBUILD_TESTING=OFF >"$BUILD/log" 2>&1 \
      && cmake --build "$BUILD" -j"$(nproc)" >>"$BUILD/log" 2>&1 \
      && cmake --install "$BUILD" >>"$BUILD/log" 2>&1
  ) || { tail -30 "$BUILD/log" >&2; die "building anon_ros_msgs failed (log above)"; }
  "$VENV/bin/python" -c 'from anon_ros_msgs.msg import AudioStamped, HeadDetectionArray' \
    || die "anon_ros_msgs was built but does not import"
  rm -f "$VENV"/.anon_ros_msgs-*
  touch "$VENV/.anon_ros_msgs-$MSGS_KEY"
fi

# --- 5. anon_ros ------------------------------------------------------------------------------------------------
PKG_KEY=$(hash_tree anon_ros carla_bridge launch config resource setup.py setup.cfg package.xml)
if [ ! -f "$VENV/.anon_ros-$PKG_KEY" ]; then
  log "installing anon_ros (with launch/ and config/ into $VENV/share/anon_ros)"
  pip_venv install -q --no-deps --no-build-isolation --force-reinstall "$ROOT" >&2 \
    || die "pip install of anon_ros failed (see above)"
  rm -rf "$ROOT/build" "$ROOT"/*.egg-info
  rm -f "$VENV"/.anon_ros-*
  touch "$VENV/.anon_ros-$PKG_KEY"
fi

# --- 6. Models ------------------------------------------------------------------------------------------------------
if [ -x "$ROOT/scripts/build_models.sh" ] && [ "${ANON_ROS_SKIP_MODELS:-0}" != 1 ]; then
  ANON_ROS_CACHE="$CACHE" "$ROOT/scripts/build_models.sh" >&2 || die "building the detection models failed (see above)"
fi

ln -sfn "$VENV" "$ROOT/.venv"
log "ready: $VENV (also linked as .venv)"
echo "$VENV"
