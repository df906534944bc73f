#!/usr/bin/env bash
# make pi-check: the trap path on arm64, without a Pi.
#
#   sudo deploy/pi-check.sh [--cpu cortex-a72] [--fresh] [--rebuild] [--cache DIR]
#
# 1. a Debian bookworm arm64 root filesystem (debootstrap --foreign, second stage under
#    qemu-user-static through binfmt_misc), cached and reused while its recipe is the same;
# 2. trapcount[edge] installed into it by deploy/install.sh itself, from a wheel built from
#    this checkout, with bookworm's Python 3.11; pip fetches the aarch64 wheels from PyPI;
# 3. `trapcount doctor` and `trapcount process` on the demo clip (make demo) with the
#    shipped model, as the trapcount user, emulating a Pi 4's CPU (Cortex-A72);
# 4. the same config, clip and model through the host's venv (x86_64), and the per-label
#    counts of both side by side: the exit status is 1 when they differ.
#
# Needs root (debootstrap, chroot, mount) and, when missing, installs debootstrap and
# qemu-user-static with apt. Everything it builds is kept under the cache folder; mounts
# (proc, sys, dev) are undone on exit, failed or not. docs/deploy.md has the timings.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$SCRIPT_DIR")

usage() {
    cat <<'EOF'
Usage: pi-check.sh [OPTIONS]

Install trapcount[edge] into an emulated Debian bookworm arm64 root filesystem with
deploy/install.sh, run `trapcount doctor` and `trapcount process` on the demo clip there
and on this machine, and compare the per-label counts (exit 1 when they differ).

Options:
  --cache DIR       cache folder [default: $PI_CHECK_CACHE, else
                    ${XDG_CACHE_HOME:-~/.cache}/trapcount/pi-check]
  --cpu NAME        the emulated CPU (qemu -cpu): cortex-a72 (Pi 4), cortex-a76 (Pi 5),
                    cortex-a53 (Zero 2 W) [default: cortex-a72]
  --mirror URL      Debian mirror [default: http://deb.debian.org/debian]
  --host-venv DIR   the x86 side's virtual environment [default: the checkout's .venv]
  --fresh           reinstall trapcount and its dependencies from scratch (pip's cache
                    is kept)
  --rebuild         rebuild the root filesystem too (the downloaded .debs are kept)
  -h, --help        show this help
EOF
}

die() {
    echo "pi-check: $*" >&2
    exit 2
}

CACHE=${PI_CHECK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/trapcount/pi-check}
CPU=cortex-a72
MIRROR=http://deb.debian.org/debian
HOST_VENV=$REPO/.venv
FRESH=0
REBUILD=0

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
    --cache | --cpu | --mirror | --host-venv)
        if [[ -z $value ]]; then
            (($# >= 2)) || die "$option needs a value"
            value=$2
            shift
        fi
        ;;
    esac
    case $option in
    --cache) CACHE=$value ;;
    --cpu) CPU=$value ;;
    --mirror) MIRROR=$value ;;
    --host-venv) HOST_VENV=$value ;;
    --fresh) FRESH=1 ;;
    --rebuild) REBUILD=1 FRESH=1 ;;
    -h | --help)
        usage
        exit 0
        ;;
    *) die "unknown option $option (see --help)" ;;
    esac
    shift
done

# The Pis' CPUs: qemu's model of each, and what their /proc/cpuinfo says (MIDR fields and
# the Features line of a Pi 4, a Pi 5 and a Zero 2 W).
case $CPU in
cortex-a72) CPU_PART=0xd08 CPU_VARIANT=0x0 CPU_REVISION=3 CPU_FEATURES="fp asimd evtstrm crc32 cpuid" ;;
cortex-a76)
    CPU_PART=0xd0b CPU_VARIANT=0x4 CPU_REVISION=1
    CPU_FEATURES="fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid"
    CPU_FEATURES+=" asimdrdm lrcpc dcpop asimddp"
    ;;
cortex-a53) CPU_PART=0xd03 CPU_VARIANT=0x0 CPU_REVISION=4 CPU_FEATURES="fp asimd evtstrm crc32 cpuid" ;;
*) die "--cpu: cortex-a72 (Pi 4), cortex-a76 (Pi 5) or cortex-a53 (Zero 2 W)" ;;
esac
((EUID == 0)) || die "run as root (sudo make pi-check): debootstrap, chroot and mount need it"
[[ $CACHE == /* ]] || CACHE=$PWD/$CACHE
CACHE=${CACHE%/}
# Mount points are matched against /proc/self/mounts, which escapes blanks.
[[ $CACHE != *[[:space:]\\]* ]] || die "--cache: a path without blanks or backslashes, please"
[[ $HOST_VENV == /* ]] || HOST_VENV=$PWD/$HOST_VENV
[[ -x $HOST_VENV/bin/trapcount ]] || die "no trapcount in $HOST_VENV (make venv)"

SUITE=bookworm
ARCH=arm64
INCLUDE=python3,python3-venv,ca-certificates
# Change the recipe and every cached root filesystem is stale: it is rebuilt.
RECIPE="pi-check rootfs 1: debootstrap --foreign --arch=$ARCH --variant=minbase --include=$INCLUDE $SUITE $MIRROR"
ROOTFS=$CACHE/rootfs
LOGS=$CACHE/logs
HOST_SIDE=$CACHE/x86_64
ARM_SIDE=$CACHE/arm64
CLIP_START=2024-06-01T12:00:00
# Inside the root filesystem.
STAGE=/root/pi-check
TRAP_VENV=/opt/trapcount/venv
WORK=/var/lib/trapcount/pi-check

EMULATED=1
[[ $(uname -m) == aarch64 ]] && EMULATED=0
ARM_NAME="arm64 (qemu $CPU)"
((EMULATED)) || ARM_NAME="arm64 (native)"
HOST_NAME="$(uname -m) (host)"

# -- steps, timings, the line on failure ---------------------------------------------------

STEP=""
STEP_LOG=""
STEP_START=$SECONDS
TIMINGS=()

duration() { printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); }

end_step() {
    [[ -n $STEP ]] || return 0
    local took=$((SECONDS - STEP_START))
    TIMINGS+=("$(printf '  %-56s %s' "$STEP" "$(duration "$took")")")
    printf '    (%s)\n' "$(duration "$took")"
    STEP=""
}

step() {
    end_step
    STEP=$1
    STEP_LOG=$LOGS/$2.log
    : >"$STEP_LOG"
    STEP_START=$SECONDS
    printf '==> %s\n' "$STEP"
}

# Run a command with its output in the step's log only.
quiet() { "$@" >>"$STEP_LOG" 2>&1; }
# Run a command with its output in the step's log and, indented, on the terminal; of
# `trapcount process`'s progress lines ("N/M frames (P%), ..."), one per 10%.
shown() {
    "$@" 2>&1 | tee -a "$STEP_LOG" | awk '
        match($0, /^[0-9]+\/[0-9]+ frames \([0-9]+%\)/) {
            tens = int(substr($0, index($0, "(") + 1) / 10)
            if (tens == last) next
            last = tens
        }
        { print "    " $0; fflush() }' last=-1
}

# Mount points under the cache, deepest first.
mounts_under() {
    local _ point _rest
    while read -r _ point _rest; do
        [[ $point == "$CACHE"/* ]] && printf '%s\n' "$point"
    done </proc/self/mounts | sort -r
}

unmount_all() {
    local point
    for point in $(mounts_under); do
        umount "$point" 2>/dev/null || umount --lazy "$point" 2>/dev/null || true
    done
}

# Processes left running inside a root filesystem of ours (an interrupted run), by id.
stop_chroot_processes() {
    local proc root pids=()
    for proc in /proc/[0-9]*; do
        root=$(readlink "$proc/root" 2>/dev/null) || continue
        [[ $root == "$CACHE"/* ]] && pids+=("${proc#/proc/}")
    done
    ((${#pids[@]})) || return 0
    kill -TERM "${pids[@]}" 2>/dev/null || true
    sleep 2
    kill -KILL "${pids[@]}" 2>/dev/null || true
}

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    if ((status != 0)); then
        stop_chroot_processes
    fi
    unmount_all
    if [[ -n $(mounts_under) ]]; then
        echo "pi-check: WARNING: still mounted: $(mounts_under | tr '\n' ' ')" >&2
    fi
    if ((status != 0)) && [[ -n $STEP ]]; then
        if [[ -s $STEP_LOG ]]; then
            echo "---- last lines of $STEP_LOG ----" >&2
            tail -n 15 "$STEP_LOG" >&2
        fi
        local what=FAILED
        ((status == 130 || status == 143)) && what=INTERRUPTED
        echo "pi-check: $what at step \"$STEP\" (exit $status)${STEP_LOG:+; log: $STEP_LOG}" >&2
    fi
    exit "$status"
}

mkdir -p "$CACHE" "$LOGS"
exec 9>"$CACHE/lock"
flock -n 9 || die "another pi-check is using $CACHE"
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
BEGIN=$SECONDS
echo "pi-check: cache $CACHE, emulated CPU ${CPU}, host $(uname -m)"

# A leftover of a killed run: its processes and mounts go before anything is touched.
stop_chroot_processes
unmount_all
[[ -z $(mounts_under) ]] || die "cannot unmount $(mounts_under | tr '\n' ' ')"

# -- the host's tools ----------------------------------------------------------------------

step "host tools (debootstrap, qemu-user-static)" host-tools
packages=(debootstrap debian-archive-keyring)
((EMULATED)) && packages+=(qemu-user-static)
missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" ||
        missing+=("$package")
done
if ((${#missing[@]})); then
    echo "    apt-get install ${missing[*]}"
    apt_install=(env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends)
    quiet "${apt_install[@]}" "${missing[@]}" ||
        { quiet apt-get update -q && quiet "${apt_install[@]}" "${missing[@]}"; }
else
    echo "    ${packages[*]}: installed"
fi

if ((EMULATED)); then
    step "binfmt_misc: qemu-aarch64" binfmt
    binfmt=/proc/sys/fs/binfmt_misc
    if [[ ! -e $binfmt/register ]]; then
        quiet mount -t binfmt_misc binfmt_misc "$binfmt"
    fi
    if [[ ! -e $binfmt/qemu-aarch64 ]]; then
        # What systemd-binfmt or update-binfmts would do on a machine that runs them: the
        # package's rule, with F (the interpreter opened now, so a chroot needs no copy).
        rule=$(grep -h '^:qemu-aarch64:' /usr/lib/binfmt.d/qemu-aarch64.conf)
        [[ $rule == *:*F* ]] || die "qemu-aarch64's binfmt rule has no F flag: $rule"
        echo "$rule" >"$binfmt/register"
        echo "    registered qemu-aarch64"
    fi
    grep -qx enabled "$binfmt/qemu-aarch64" || echo 1 >"$binfmt/qemu-aarch64"
    grep -q '^flags:.*F' "$binfmt/qemu-aarch64" ||
        die "qemu-aarch64 is registered without the F flag (fix binary): a chroot cannot run it"
    sed -n 's/^interpreter /    interpreter /p' "$binfmt/qemu-aarch64"
fi

# -- the demo clip, the wheel ----------------------------------------------------------------

step "demo clip (make demo)" demo
if [[ ! -f $REPO/demo-out/sample.mp4 || ! -f $REPO/demo-out/demo.toml ]]; then
    (cd "$REPO" && quiet "$HOST_VENV/bin/python" -m edge_agent.demo --out demo-out)
fi
for side in "$HOST_SIDE" "$ARM_SIDE"; do
    rm -rf "$side"
    mkdir -p "$side"
done
# A copy, so that a `make demo` meanwhile changes nothing here; the same bytes both sides.
cp "$REPO/demo-out/sample.mp4" "$HOST_SIDE/sample.mp4"
"$HOST_VENV/bin/python" "$SCRIPT_DIR/pi_check.py" config "$REPO/demo-out/demo.toml" \
    >"$HOST_SIDE/pi-check.toml"
echo "    $(sha256sum "$HOST_SIDE/sample.mp4" | cut -c1-12)  demo-out/sample.mp4"

step "trapcount wheel from the checkout" wheel
# As deploy/install.sh builds one: from a copy of the tracked and unignored files.
rm -rf "$CACHE/wheel"
mkdir -p "$CACHE/wheel/src" "$CACHE/wheel/dist"
git -c safe.directory="$REPO" -C "$REPO" ls-files -z --cached --others --exclude-standard |
    tar -C "$REPO" --null --ignore-failed-read -T - -cf - 2>/dev/null |
    tar -C "$CACHE/wheel/src" -xf -
quiet "$HOST_VENV/bin/python" -m pip wheel --no-deps --no-build-isolation --disable-pip-version-check \
    --no-input -w "$CACHE/wheel/dist" "$CACHE/wheel/src"
wheels=("$CACHE"/wheel/dist/trapcount-*.whl)
[[ -f ${wheels[0]} ]] || die "no wheel in $CACHE/wheel/dist"
WHEEL=${wheels[0]}
echo "    $(basename "$WHEEL")"

# -- the root filesystem ---------------------------------------------------------------------

# A command in the root filesystem, with a clean environment (none of the host's pip
# settings) and the emulated CPU. Pip takes wheels only: a missing aarch64 wheel fails at
# once instead of compiling for an hour under emulation.
in_root() {
    local env=(PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
        LANG=C.UTF-8 TERM=dumb QEMU_CPU="$CPU" PIP_ONLY_BINARY=:all: PIP_PROGRESS_BAR=off
        PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_DEFAULT_TIMEOUT=120)
    local name
    for name in http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY; do
        [[ -z ${!name:-} ]] || env+=("$name=${!name}")
    done
    QEMU_CPU=$CPU chroot "$ROOTFS" /usr/bin/env -i "${env[@]}" "$@"
}

step "arm64 root filesystem (bookworm)" rootfs
stale=""
if ((REBUILD)); then
    stale="--rebuild"
elif [[ ! -d $ROOTFS ]]; then
    stale="none yet"
elif [[ $(cat "$CACHE/rootfs.recipe" 2>/dev/null) != "$RECIPE" ]]; then
    stale="built by another recipe (or not finished)"
elif ! python_version=$(in_root /usr/bin/python3 -c \
    'import sys, ensurepip, venv; print("%d.%d" % sys.version_info[:2])' 2>>"$STEP_LOG"); then
    stale="its python3 does not run"
elif [[ $python_version != 3.11 ]]; then
    stale="python3 is $python_version, not 3.11"
fi
if [[ -n $stale ]]; then
    echo "    building ($stale): debootstrap, then its second stage under emulation"
    rm -f "$CACHE/rootfs.recipe"
    for dir in "$ROOTFS" "$CACHE/rootfs.new"; do
        # --one-file-system: never into a mount (none is left: unmount_all ran above).
        [[ ! -e $dir ]] || rm -rf --one-file-system "$dir"
    done
    mkdir -p "$CACHE/debs" "$CACHE/rootfs.new"
    keyring=()
    [[ ! -f /usr/share/keyrings/debian-archive-keyring.gpg ]] ||
        keyring=(--keyring=/usr/share/keyrings/debian-archive-keyring.gpg)
    quiet debootstrap --foreign --arch="$ARCH" --variant=minbase --include="$INCLUDE" \
        "${keyring[@]}" --cache-dir="$CACHE/debs" "$SUITE" "$CACHE/rootfs.new" "$MIRROR"
    echo "    first stage done; second stage (emulated)"
    QEMU_CPU=$CPU quiet chroot "$CACHE/rootfs.new" /usr/bin/env -i QEMU_CPU="$CPU" \
        PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 /debootstrap/debootstrap --second-stage
    mv "$CACHE/rootfs.new" "$ROOTFS"
    in_root /usr/bin/python3 -c 'import ensurepip, venv' 2>>"$STEP_LOG"
    printf '%s\n' "$RECIPE" >"$CACHE/rootfs.recipe"
else
    echo "    cached: $ROOTFS (python $python_version)"
fi
echo "    $(in_root /usr/bin/python3 -c 'import platform; print(platform.machine(), "Python", platform.python_version())')," \
    "Debian $(cat "$ROOTFS/etc/debian_version")"

# proc, sys (read-only), a /dev of its own (a tmpfs with the few nodes a program needs,
# never the host's /dev) and pip's cache: undone by cleanup on exit.
mount -t proc -o nosuid,nodev,noexec proc "$ROOTFS/proc"
mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$ROOTFS/sys"
mount -t tmpfs -o mode=0755,nosuid,size=64m pi-check-dev "$ROOTFS/dev"
for node in null:1:3 zero:1:5 full:1:7 random:1:8 urandom:1:9 tty:5:0; do
    IFS=: read -r name major minor <<<"$node"
    mknod -m 0666 "$ROOTFS/dev/$name" c "$major" "$minor"
done
ln -s /proc/self/fd "$ROOTFS/dev/fd"
ln -s /proc/self/fd/0 "$ROOTFS/dev/stdin"
ln -s /proc/self/fd/1 "$ROOTFS/dev/stdout"
ln -s /proc/self/fd/2 "$ROOTFS/dev/stderr"
install -d -m 1777 "$ROOTFS/dev/shm"
if ((EMULATED)); then
    # qemu 7.2 (bookworm's) shows the host's /proc/cpuinfo to arm64 programs: an x86 one,
    # on which LiteRT's CPU detection (cpuinfo, for XNNPACK) crashes. A Pi's instead, one
    # entry per processor that /sys lists, bound over it in this proc mount only.
    processors=(/sys/devices/system/cpu/cpu[0-9]*)
    for ((i = 0; i < ${#processors[@]}; i++)); do
        printf 'processor\t: %d\nBogoMIPS\t: 108.00\nFeatures\t: %s\n' "$i" "$CPU_FEATURES"
        printf 'CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: %s\n' "$CPU_VARIANT"
        printf 'CPU part\t: %s\nCPU revision\t: %s\n\n' "$CPU_PART" "$CPU_REVISION"
    done >"$CACHE/cpuinfo"
    mount --bind -o ro "$CACHE/cpuinfo" "$ROOTFS/proc/cpuinfo"
fi
cp -L /etc/resolv.conf "$ROOTFS/etc/resolv.conf"
# pip's cache (the downloaded wheels) outlives a rebuilt root filesystem.
mkdir -p "$CACHE/pip" "$ROOTFS/root/.cache/pip"
mount --bind "$CACHE/pip" "$ROOTFS/root/.cache/pip"

# The host's own certificate authorities (/usr/local/share/ca-certificates: a proxy that
# inspects TLS, a company's CA) are trusted inside too, or pip cannot reach PyPI through
# them. Debian's pip reads the system bundle.
local_cas=$ROOTFS/usr/local/share/ca-certificates/pi-check-host
rm -rf "$CACHE/host-cas"
mkdir -p "$CACHE/host-cas"
if [[ -d /usr/local/share/ca-certificates ]]; then
    find /usr/local/share/ca-certificates -name '*.crt' -type f -exec cp {} "$CACHE/host-cas/" \;
fi
if ! diff -r "$CACHE/host-cas" "$local_cas" >/dev/null 2>&1; then
    rm -rf "$local_cas"
    cp -r "$CACHE/host-cas" "$local_cas"
    echo "    the host's own CA certificates: $(find "$local_cas" -name '*.crt' | wc -l)"
    quiet in_root update-ca-certificates --fresh
fi

# -- install.sh in the root filesystem -------------------------------------------------------

step "deploy/install.sh in arm64 (pip: aarch64 wheels)" install
if ((FRESH)); then
    echo "    --fresh: removing the installed trap"
    rm -rf "$ROOTFS/opt/trapcount" "$ROOTFS/etc/trapcount" "$ROOTFS/var/lib/trapcount"
fi
rm -rf "$ROOTFS$STAGE"
mkdir -p "$ROOTFS$STAGE/deploy" "$ROOTFS$STAGE/model"
cp "$SCRIPT_DIR"/{install.sh,trap.example.toml,trapcount.service,pi_check.py} "$ROOTFS$STAGE/deploy/"
# model*.tflite: the model and, when it has one, its grey companion (model-grey.tflite).
cp "$REPO"/models/default/model*.tflite "$REPO/models/default/model.json" "$ROOTFS$STAGE/model/"
cp "$WHEEL" "$ROOTFS$STAGE/"
# The way a Pi is set up (sudo deploy/install.sh --source WHEEL), the model copied in.
shown in_root /bin/bash "$STAGE/deploy/install.sh" --source "$STAGE/$(basename "$WHEEL")" \
    --model "$STAGE/model"
in_root "$TRAP_VENV/bin/python" "$STAGE/deploy/pi_check.py" versions >"$ARM_SIDE/versions.json"

# -- doctor and process, both sides ----------------------------------------------------------

# The arm64 side's folder: the same config and clip; `model` is the installed model.
rm -rf "$ROOTFS$WORK"
mkdir -p "$ROOTFS$WORK"
cp "$HOST_SIDE/pi-check.toml" "$HOST_SIDE/sample.mp4" "$ROOTFS$WORK/"
ln -s ../models/current "$ROOTFS$WORK/model"
in_root chown -R trapcount:trapcount "$WORK"

# A trapcount command as the service's user, in the work folder, umask as the unit's.
as_trap() {
    # shellcheck disable=SC2016  # $0 and $@ are the inner shell's: the folder, the command
    in_root setpriv --reuid=trapcount --regid=trapcount --init-groups \
        /usr/bin/env HOME=/var/lib/trapcount \
        /bin/sh -c 'umask 0077 && cd "$0" && exec "$@"' "$WORK" "$TRAP_VENV/bin/trapcount" "$@"
}
host_trapcount() {
    (cd "$HOST_SIDE" && umask 0077 && "$HOST_VENV/bin/trapcount" "$@")
}

step "$ARM_NAME: trapcount doctor" arm64-doctor
shown as_trap doctor --config pi-check.toml

step "$ARM_NAME: trapcount process sample.mp4" arm64-process
shown as_trap process sample.mp4 --config pi-check.toml --start "$CLIP_START"
as_trap report --config pi-check.toml --format json >"$ARM_SIDE/report.json" 2>>"$STEP_LOG"

step "$HOST_NAME: trapcount doctor, process" host
ln -s "$REPO/models/default" "$HOST_SIDE/model"
quiet host_trapcount doctor --config pi-check.toml
quiet host_trapcount process sample.mp4 --config pi-check.toml --start "$CLIP_START"
host_trapcount report --config pi-check.toml --format json >"$HOST_SIDE/report.json" 2>>"$STEP_LOG"
"$HOST_VENV/bin/python" "$SCRIPT_DIR/pi_check.py" versions >"$HOST_SIDE/versions.json"
echo "    doctor ok, process ok (logs: $STEP_LOG)"

step "compare the counts" compare
end_step
echo
set +e
"$HOST_VENV/bin/python" "$SCRIPT_DIR/pi_check.py" compare "$HOST_SIDE" "$ARM_SIDE" \
    --names "$HOST_NAME" "$ARM_NAME" | tee "$LOGS/compare.log"
equal=${PIPESTATUS[0]}
set -e
echo
echo "timings:"
printf '%s\n' "${TIMINGS[@]}"
printf '  %-56s %s\n' "total" "$(duration $((SECONDS - BEGIN)))"
if ((equal != 0)); then
    STEP="compare the counts"
    STEP_LOG=""
    exit 1
fi
echo "pi-check: ok, $ARM_NAME counts the demo clip as $HOST_NAME does"
