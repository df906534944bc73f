#!/usr/bin/env bash
# Install or upgrade trapcount on a trap: a Raspberry Pi (4, 5, Zero 2 W) on Raspberry Pi OS
# Bookworm 64-bit, or any Debian 12 machine. Run it again to upgrade; the config is kept.
#
#   sudo deploy/install.sh                       # from this checkout
#   sudo deploy/install.sh --source trapcount-0.2.0-py3-none-any.whl --model models/mine
#   deploy/install.sh --prefix /tmp/stage --no-systemd   # everything under /tmp/stage
#   deploy/install.sh --dry-run                  # print what it would do
#
# What it does (each step is skipped when already done):
#   apt packages     python3-venv; python3-picamera2 on a Raspberry Pi (--picamera2)
#   system user      trapcount (group trapcount, also in group video for the cameras)
#   /opt/trapcount/venv        a virtual environment with --system-site-packages (so apt's
#                              picamera2 is importable), trapcount[EXTRAS] installed into it
#   /etc/trapcount/trap.toml   the config, from deploy/trap.example.toml on first install,
#                              never overwritten (trap.example.toml beside it is refreshed)
#   /var/lib/trapcount         data: the database, and models/<release>/ with a `current`
#                              symlink the config points at (swapped atomically)
#   /etc/systemd/system/trapcount.service   enabled; restarted on upgrade if it was running
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SERVICE_USER=trapcount

usage() {
    cat <<'EOF'
Usage: install.sh [OPTIONS]

Install or upgrade trapcount (a rerun upgrades; the config is kept).

Options:
  --source PATH      a trapcount wheel (.whl) or source checkout
                     [default: the checkout holding this script]
  --extras LIST      pip extras to install [default: edge]
  --model DIR        install this model (model.tflite + model.json) as the current model
                     [default: the checkout's models/default, on first install only]
  --python PATH      interpreter for the virtual environment [default: /usr/bin/python3]
  --prefix DIR       install everything under DIR (a staging tree, tests): no apt, no
                     system user, no systemctl
  --no-systemd       do not install the systemd unit
  --no-apt           do not install apt packages
  --picamera2 WHEN   install python3-picamera2: auto (on a Raspberry Pi), yes, no
                     [default: auto]
  --offline          never reach a package index: pip --no-index --no-build-isolation
                     (dependencies from --wheelhouse or already installed)
  --wheelhouse DIR   a folder of wheels for pip (--find-links)
  --start            start (or restart) the service now
  --dry-run          print what would be done and change nothing
  -h, --help         show this help
EOF
}

die() {
    echo "install.sh: $*" >&2
    exit 1
}

note() { printf '==> %s\n' "$*"; }

SOURCE=""
EXTRAS="edge"
MODEL=""
PYTHON=/usr/bin/python3
PREFIX=""
SYSTEMD=1
APT=1
PICAMERA2=auto
OFFLINE=0
WHEELHOUSE=""
START=0
DRY_RUN=0

while (($#)); do
    option=$1
    value=""
    case $option in
    --*=*)
        value=${option#*=}
        option=${option%%=*}
        ;;
    esac
    case $option in
    --source | --extras | --model | --python | --prefix | --picamera2 | --wheelhouse)
        if [[ -z $value ]]; then
            (($# >= 2)) || die "$option needs a value"
            value=$2
            shift
        fi
        ;;
    esac
    case $option in
    --source) SOURCE=$value ;;
    --extras) EXTRAS=$value ;;
    --model) MODEL=$value ;;
    --python) PYTHON=$value ;;
    --prefix) PREFIX=$value ;;
    --picamera2) PICAMERA2=$value ;;
    --wheelhouse) WHEELHOUSE=$value ;;
    --no-systemd) SYSTEMD=0 ;;
    --no-apt) APT=0 ;;
    --offline) OFFLINE=1 ;;
    --start) START=1 ;;
    --dry-run) DRY_RUN=1 ;;
    -h | --help)
        usage
        exit 0
        ;;
    *) die "unknown option $option (see --help)" ;;
    esac
    shift
done

case $PICAMERA2 in auto | yes | no) ;; *) die "--picamera2 is auto, yes or no" ;; esac
[[ $EXTRAS =~ ^[A-Za-z0-9_,-]*$ ]] || die "--extras: a comma-separated list of extras"

USER_SETUP=1
if [[ -n $PREFIX ]]; then
    [[ $PREFIX == /* ]] || PREFIX=$PWD/$PREFIX
    PREFIX=${PREFIX%/}
    APT=0
    USER_SETUP=0
fi
[[ $PREFIX != *[\"\\]* ]] || die "--prefix: no quotes or backslashes, please"

APP_DIR=$PREFIX/opt/trapcount
VENV=$APP_DIR/venv
CONF_DIR=$PREFIX/etc/trapcount
CONFIG=$CONF_DIR/trap.toml
DATA_DIR=$PREFIX/var/lib/trapcount
MODELS_DIR=$DATA_DIR/models
UNIT=$PREFIX/etc/systemd/system/trapcount.service
SYSTEMD_RUNNING=0
[[ -z $PREFIX && -d /run/systemd/system ]] && SYSTEMD_RUNNING=1

# Print a command, then run it (unless --dry-run).
run() {
    printf '+'
    printf ' %q' "$@"
    printf '\n'
    if ((!DRY_RUN)); then
        "$@"
    fi
}

# Write stdin to a file atomically (a temporary file beside it, then a rename).
write_file() {
    local path=$1 mode=$2 owner=${3:-}
    local tmp
    if ((DRY_RUN)); then
        printf '+ write %q (mode %s%s)\n' "$path" "$mode" "${owner:+, owner $owner}"
        cat >/dev/null
        return
    fi
    tmp=$(mktemp "$path.XXXXXX")
    cat >"$tmp"
    chmod "$mode" "$tmp"
    [[ -z $owner ]] || chown "$owner" "$tmp"
    mv -f "$tmp" "$path"
}

# -- checks -------------------------------------------------------------------------------

if [[ -z $PREFIX ]] && ((!DRY_RUN)) && ((EUID != 0)); then
    die "run as root (sudo), or give --prefix DIR for an install under DIR"
fi
[[ -x $PYTHON ]] || command -v "$PYTHON" >/dev/null || die "no Python at $PYTHON (apt-get install python3)"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
    die "$PYTHON is older than Python 3.11 (Pi OS Bookworm has 3.11)"
PY_VERSION=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')

SOURCE_KIND=""
if [[ -z $SOURCE ]]; then
    SOURCE=$(dirname "$SCRIPT_DIR")
fi
if [[ -f $SOURCE && $SOURCE == *.whl ]]; then
    SOURCE_KIND=wheel
elif [[ -f $SOURCE/pyproject.toml ]]; then
    SOURCE_KIND=checkout
else
    die "--source: $SOURCE is neither a .whl file nor a trapcount checkout"
fi
SOURCE=$(cd "$(dirname "$SOURCE")" && pwd)/$(basename "$SOURCE")
SOURCE=${SOURCE%/.}

MODEL_EXPLICIT=0
if [[ -n $MODEL ]]; then
    MODEL_EXPLICIT=1
elif [[ $SOURCE_KIND == checkout && -f $SOURCE/models/default/model.tflite ]]; then
    MODEL=$SOURCE/models/default
fi
if [[ -n $MODEL ]]; then
    [[ -f $MODEL/model.tflite && -f $MODEL/model.json ]] ||
        die "--model: $MODEL has no model.tflite + model.json"
fi

if [[ $PICAMERA2 == auto ]]; then
    PICAMERA2=no
    if grep -qs "Raspberry Pi" /proc/device-tree/model; then PICAMERA2=yes; fi
fi

UPGRADE=0
[[ -x $VENV/bin/trapcount ]] && UPGRADE=1
if ((UPGRADE)); then
    note "upgrading trapcount in $APP_DIR from $SOURCE"
else
    note "installing trapcount into $APP_DIR from $SOURCE"
fi
((DRY_RUN)) && note "dry run: nothing is changed"

# -- apt ----------------------------------------------------------------------------------

if ((APT)); then
    packages=(python3-venv)
    [[ $PICAMERA2 == yes ]] && packages+=(python3-picamera2)
    missing=()
    for package in "${packages[@]}"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" ||
            missing+=("$package")
    done
    if ((${#missing[@]})); then
        note "apt packages: ${missing[*]}"
        run apt-get update -q
        run env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
            "${missing[@]}"
    else
        note "apt packages: ${packages[*]} already installed"
    fi
fi

# -- user and folders ---------------------------------------------------------------------

OWNER_DATA=""
OWNER_CONF=""
if ((USER_SETUP)); then
    if id -u "$SERVICE_USER" >/dev/null 2>&1; then
        note "user $SERVICE_USER exists"
    else
        run useradd --system --user-group --home-dir "$DATA_DIR" --no-create-home \
            --shell /usr/sbin/nologin --comment "trapcount camera-trap agent" "$SERVICE_USER"
    fi
    if getent group video >/dev/null && ! id -nG "$SERVICE_USER" 2>/dev/null | grep -qw video; then
        run usermod --append --groups video "$SERVICE_USER"
    fi
    OWNER_DATA=$SERVICE_USER:$SERVICE_USER
    OWNER_CONF=root:$SERVICE_USER
fi

make_dir() {
    local path=$1 mode=$2 owner=${3:-}
    if [[ -n $owner ]]; then
        run install -d -m "$mode" -o "${owner%%:*}" -g "${owner##*:}" "$path"
    else
        run install -d -m "$mode" "$path"
    fi
}
make_dir "$APP_DIR" 0755
make_dir "$CONF_DIR" 0750 "$OWNER_CONF"
make_dir "$DATA_DIR" 0750 "$OWNER_DATA"
make_dir "$MODELS_DIR" 0755

# -- the virtual environment and the package ----------------------------------------------

venv_version=""
if [[ -x $VENV/bin/python ]]; then
    venv_version=$("$VENV/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || true)
fi
if [[ $venv_version == "$PY_VERSION" ]]; then
    note "virtual environment $VENV (Python $venv_version) reused"
else
    [[ -z $venv_version ]] || note "virtual environment has Python $venv_version, want $PY_VERSION: recreating"
    [[ ! -e $VENV ]] || run rm -rf "$VENV"
    run "$PYTHON" -m venv --system-site-packages "$VENV"
fi

pip_args=(install --upgrade --disable-pip-version-check --no-input)
((OFFLINE)) && pip_args+=(--no-index --no-build-isolation)
[[ -z $WHEELHOUSE ]] || pip_args+=(--find-links "$WHEELHOUSE")
requirement_suffix=""
[[ -z $EXTRAS ]] || requirement_suffix="[$EXTRAS]"

wheel=$SOURCE
if [[ $SOURCE_KIND == checkout ]]; then
    # Build a wheel from a clean copy of the checkout (tracked and unignored files only): no
    # stale build/ folder ends up in the package, and the checkout is left as it was.
    build_dir=${TMPDIR:-/tmp}/trapcount-build.XXXXXX
    if ((DRY_RUN)); then
        note "would build a wheel from a copy of the checkout's files in $build_dir"
        wheel=$build_dir/dist/trapcount.whl
    else
        build_dir=$(mktemp -d "$build_dir")
        trap 'rm -rf "$build_dir"' EXIT
        mkdir "$build_dir/src"
        if git -c safe.directory="$SOURCE" -C "$SOURCE" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
            note "building a wheel from the checkout's files (git ls-files)"
            git -c safe.directory="$SOURCE" -C "$SOURCE" ls-files -z --cached --others --exclude-standard |
                tar -C "$SOURCE" --null --ignore-failed-read -T - -cf - 2>/dev/null |
                tar -C "$build_dir/src" -xf -
        else
            note "building a wheel from $SOURCE"
            tar -C "$SOURCE" --exclude=.venv --exclude=.git --exclude=build --exclude=dist \
                --exclude='*.egg-info' --exclude=runs -cf - . | tar -C "$build_dir/src" -xf -
        fi
        build_args=(wheel --no-deps --disable-pip-version-check --no-input --quiet -w "$build_dir/dist")
        ((OFFLINE)) && build_args+=(--no-index --no-build-isolation)
        run "$VENV/bin/python" -m pip "${build_args[@]}" "$build_dir/src"
        wheel=$(echo "$build_dir"/dist/trapcount-*.whl)
        [[ -f $wheel ]] || die "building the wheel failed"
    fi
fi
# The dependencies (and trapcount when its version is new), then trapcount itself again:
# pip keeps an installed trapcount of the same version, and a rebuilt one must replace it.
run "$VENV/bin/python" -m pip "${pip_args[@]}" "$wheel$requirement_suffix"
run "$VENV/bin/python" -m pip "${pip_args[@]}" --no-deps --force-reinstall "$wheel"

# -- config -------------------------------------------------------------------------------

# The example with the installed paths: the database and the model in the data folder.
render_config() {
    local line
    while IFS= read -r line || [[ -n $line ]]; do
        case $line in
        'db_path = '*) printf 'db_path = "%s"\n' "$DATA_DIR/trapcount.sqlite" ;;
        'model_dir = '*) printf 'model_dir = "%s"\n' "$MODELS_DIR/current" ;;
        *) printf '%s\n' "$line" ;;
        esac
    done <"$SCRIPT_DIR/trap.example.toml"
}

render_config | write_file "$CONF_DIR/trap.example.toml" 0644 "$OWNER_CONF"
if [[ -e $CONFIG ]]; then
    note "config $CONFIG kept (new keys and defaults: $CONF_DIR/trap.example.toml)"
else
    render_config | write_file "$CONFIG" 0640 "$OWNER_CONF"
    note "config $CONFIG made from the example: set trap.id, the location and source.uri"
fi
if ((!DRY_RUN)) && ! "$VENV/bin/python" -c \
    'import sys; from edge_agent.config import load_config; load_config(sys.argv[1])' \
    "$CONFIG" 2>/dev/null; then
    echo "install.sh: WARNING: $CONFIG does not load with this trapcount; check it with:" >&2
    echo "    sudo -u $SERVICE_USER $VENV/bin/trapcount doctor --config $CONFIG" >&2
fi

# -- the model ----------------------------------------------------------------------------

# models/<the model's version: first 12 hex digits of the .tflite's sha256, or of both
# networks' for a model with a grey companion (edge_agent.manifest.Manifest.identity)>/,
# then `current` swapped to it with one rename: the agent's hot reload never sees a model
# without its manifest. The manifest names the companion file (`grey.file`).
install_model() {
    local source=$1 release sha listing name
    local -a files paths=()
    listing=$("$PYTHON" - "$source" <<'PY'
import hashlib, json, sys
from pathlib import Path
folder = Path(sys.argv[1])
manifest = json.loads((folder / "model.json").read_text(encoding="utf-8"))
colour = hashlib.sha256((folder / "model.tflite").read_bytes()).hexdigest()
files = ["model.json", "model.tflite"]
grey = manifest.get("grey") or {}
if grey.get("file"):
    identity = hashlib.sha256(f"{colour}+{grey['sha256']}".encode()).hexdigest()
    files.append(Path(grey["file"]).name)
else:
    identity = colour
print(identity[:12], *files, sep="\n")
PY
    ) || die "--model: cannot read $source/model.json"
    mapfile -t files <<<"$listing"
    sha=${files[0]}
    for name in "${files[@]:1}"; do
        [[ -f $source/$name ]] || die "--model: $source has no $name (named by model.json)"
        paths+=("$source/$name")
    done
    release=$MODELS_DIR/$sha
    if [[ -d $release ]]; then
        note "model $sha already in $release"
    else
        run rm -rf "$MODELS_DIR/.incoming-$sha"
        run install -d -m 0755 "$MODELS_DIR/.incoming-$sha"
        run install -m 0644 "${paths[@]}" "$MODELS_DIR/.incoming-$sha/"
        run mv -T "$MODELS_DIR/.incoming-$sha" "$release"
    fi
    if [[ $(readlink "$MODELS_DIR/current" 2>/dev/null || true) == "$sha" ]]; then
        note "model $sha is the current model"
    else
        run ln -sfn "$sha" "$MODELS_DIR/.current.new"
        run mv -T "$MODELS_DIR/.current.new" "$MODELS_DIR/current"
        note "current model: $sha"
    fi
}

if [[ -n $MODEL ]] && { ((MODEL_EXPLICIT)) || [[ ! -e $MODELS_DIR/current ]]; }; then
    install_model "$MODEL"
elif [[ -e $MODELS_DIR/current ]]; then
    note "model kept: $MODELS_DIR/current -> $(readlink "$MODELS_DIR/current" || true)"
else
    echo "install.sh: WARNING: no model installed; rerun with --model DIR or push one" \
        "with the fleet playbook (deploy/fleet)" >&2
fi

# -- systemd ------------------------------------------------------------------------------

if ((SYSTEMD)); then
    make_dir "$(dirname "$UNIT")" 0755
    unit=$(<"$SCRIPT_DIR/trapcount.service")
    unit=${unit//\/opt\/trapcount/$APP_DIR}
    unit=${unit//\/etc\/trapcount/$CONF_DIR}
    unit=${unit//\/var\/lib\/trapcount/$DATA_DIR}
    printf '%s\n' "$unit" | write_file "$UNIT" 0644
    if ((SYSTEMD_RUNNING)); then
        run systemctl daemon-reload
        run systemctl enable trapcount.service
        if ((START)); then
            run systemctl restart trapcount.service
        elif ((UPGRADE)); then
            run systemctl try-restart trapcount.service
        fi
    else
        note "systemd is not running here (or --prefix): unit written, not enabled"
    fi
fi

if ((!DRY_RUN)); then
    note "$("$VENV/bin/trapcount" --version) installed"
fi
if ((!UPGRADE)); then
    cat <<EOF
Next steps:
  1. edit $CONFIG (trap.id, location, source.uri; [sync] for a fleet)
  2. check it, as the service's user:
       sudo -u $SERVICE_USER $VENV/bin/trapcount doctor --config $CONFIG
  3. start it:  systemctl start trapcount   (logs: journalctl -u trapcount -f)
EOF
fi
