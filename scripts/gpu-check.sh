#!/bin/sh
# The GPU check: ONE prepared run on the GPU machine (Ubuntu 24.04, CUDA 13, no Lua, no network,
# a 10-minute limit per command). Two steps:
#
#   1. here:  sh scripts/gpu-check.sh pack
#      builds build/ with CUDA=1 (if needed) and writes build/gpu-carry.tar.xz (about 25 MB):
#      bin/nd, lib/nd/{core.so,libnd_cuda.so}, rtlib/ (the host libraries nd links that a bare
#      CUDA image may lack: OpenBLAS, gfortran, libpng, readline, ...), and a CIFAR-10 subset
#      (gpu-data/cifar10: 1000 images per training batch file, 2000 test images) when
#      data/cache/cifar10 exists.
#   2. device: run with carry ["build/gpu-carry.tar.xz"] (or ["build"]) and the command
#        sh scripts/gpu-check.sh
#      It unpacks the tarball into build/ (or uses a carried build/ as is; `make CUDA=1` only when
#      build/bin/nd is missing), then runs, each stage under a hard time limit so that the whole
#      fits in about 9 minutes:
#        nvidia-smi and scripts/doctor.sh                      -> $OUT/check.log
#        the CUDA parity specs tests/spec/cuda*_spec.lua        -> $OUT/specs.txt   (SPEC_S, 150 s)
#          through scripts/spec_runner.lua (busted is not there; the runner runs busted-style specs
#          under build/bin/nd)
#        bench/gpu.lua, 4 models x bn/deconv                    -> $OUT/bench.txt, bench.tsv (BENCH_S, 230 s)
#        a short CIFAR-10 training run on the GPU               -> $OUT/train.txt, train-summary.json,
#          (VGG-11 deconv; the full data set when               train-log.tsv (TRAIN_S, 130 s)
#          data/cache/cifar10 is there, else the carried subset, else synthetic data)
#      Every stage's output also goes to $OUT/check.log; the last line there lists each stage's exit
#      status. Without $OUT (by hand), outputs go to gpu-check-out/.
#   Full CIFAR-10 (176 MB, over one call's 64 MiB carry) for the 20-epoch recipe:
#      here:   sh scripts/gpu-check.sh data-pack   -> build/gpu-cifar-1.tar .. -3.tar (2 files each)
#      device: three calls in a row (the machine goes back after 30 s idle), each with carry
#              ["build/gpu-cifar-N.tar"] and the command
#                mkdir -p /tmp/nd-data && tar -C /tmp/nd-data -xf build/gpu-cifar-N.tar
#              then the check as above (it uses /tmp/nd-data/cifar10 when complete), e.g. with
#              TRAIN_EPOCHS=20 TRAIN_S=200 BENCH_S=120 for the accuracy target.
# Env: SPEC_S BENCH_S TRAIN_S (seconds), BENCH_ARGS (extra bench/gpu.lua options), TRAIN_EPOCHS,
#      TRAIN_TF32=1 (the training run with TF32 cuBLAS products, Deconv's included: ND_CUDA_TF32=1;
#      the parity specs force strict fp32 themselves; bench/gpu.lua has its own dc+tf32 row).
set -u
cd "$(dirname "$0")/.." || exit 1
BUILD=${BUILD:-build}

if [ "${1:-}" = pack ]; then
    set -e
    if [ ! -x "$BUILD/bin/nd" ] || [ ! -f "$BUILD/lib/nd/libnd_cuda.so" ]; then
        make BUILD="$BUILD" CUDA=1 -j"$(nproc)" all
    fi
    stage=$(mktemp -d)
    trap 'rm -rf "$stage"' EXIT
    mkdir -p "$stage/bin" "$stage/lib/nd" "$stage/rtlib"
    cp "$BUILD/bin/nd" "$stage/bin/"
    cp "$BUILD/lib/nd/core.so" "$BUILD/lib/nd/libnd_cuda.so" "$stage/lib/nd/"
    # host libraries outside glibc/libstdc++/CUDA, resolved here
    for f in "$BUILD/bin/nd" "$BUILD/lib/nd/libnd_cuda.so"; do
        ldd "$f" | awk '/=> \//{print $3}'
    done | sort -u | while read -r lib; do
        case "$(basename "$lib")" in
        libc.so*|libm.so*|libdl.so*|librt.so*|libpthread.so*|ld-linux*|libstdc++*|libgcc_s*) ;;
        libcud*|libcublas*|libnv*) ;;
        *) cp -L "$lib" "$stage/rtlib/" ;;
        esac
    done
    if [ -f data/cache/cifar10/test_batch.bin ]; then
        mkdir -p "$stage/gpu-data/cifar10"
        for i in 1 2 3 4 5; do
            head -c $((1000 * 3073)) "data/cache/cifar10/data_batch_$i.bin" >"$stage/gpu-data/cifar10/data_batch_$i.bin"
        done
        head -c $((2000 * 3073)) data/cache/cifar10/test_batch.bin >"$stage/gpu-data/cifar10/test_batch.bin"
    fi
    tar -C "$stage" -cJf "$BUILD/gpu-carry.tar.xz" .
    ls -la "$BUILD/gpu-carry.tar.xz"
    echo "carry [\"$BUILD/gpu-carry.tar.xz\"], command: sh scripts/gpu-check.sh"
    exit 0
fi

if [ "${1:-}" = data-pack ]; then
    set -e
    src=data/cache/cifar10
    [ -f "$src/test_batch.bin" ] || { echo "no $src: run make data-cifar10 first" >&2; exit 1; }
    mkdir -p "$BUILD"
    set -- data_batch_1.bin data_batch_2.bin data_batch_3.bin data_batch_4.bin data_batch_5.bin test_batch.bin
    n=1
    while [ $# -gt 0 ]; do
        tar -C data/cache -cf "$BUILD/gpu-cifar-$n.tar" "cifar10/$1" "cifar10/$2"
        ls -la "$BUILD/gpu-cifar-$n.tar"
        shift 2
        n=$((n + 1))
    done
    exit 0
fi

OUT=${OUT:-gpu-check-out}
mkdir -p "$OUT"
LOG="$OUT/check.log"
: >"$LOG"
status=""
log() { echo "$*" | tee -a "$LOG"; }
# stage NAME SECONDS OUTFILE CMD...: runs CMD under a hard limit, output to OUTFILE and the log.
stage() {
    name=$1 secs=$2 out=$3
    shift 3
    log "== $name (limit ${secs}s): $*"
    t0=$(date +%s)
    timeout -k 5 "$secs" "$@" >"$out" 2>&1
    rc=$?
    cat "$out" >>"$LOG"
    tail -n 40 "$out"
    [ $rc -eq 124 ] || [ $rc -eq 137 ] && log "!! $name stopped at its ${secs}s limit"
    log "== $name: exit $rc after $(($(date +%s) - t0))s"
    status="$status $name=$rc"
}

if [ -f "$BUILD/gpu-carry.tar.xz" ]; then
    log "unpacking $BUILD/gpu-carry.tar.xz"
    tar -C "$BUILD" -xJf "$BUILD/gpu-carry.tar.xz" || log "!! unpack failed"
fi
if [ ! -x "$BUILD/bin/nd" ] || [ ! -f "$BUILD/lib/nd/libnd_cuda.so" ]; then
    stage build 240 "$OUT/build.txt" make BUILD="$BUILD" CUDA=1 -j"$(nproc)" all
fi
# libraries: the carried host ones, then cuDNN/cuBLAS wherever the image has them
LDP="$PWD/$BUILD/rtlib"
for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do [ -d "$d" ] && LDP="$LDP:$d"; done
for pat in 'libcudnn.so.9' 'libcublas.so.13'; do
    if ! ldconfig -p 2>/dev/null | grep -q "$pat" && ! ls /usr/local/cuda/lib64/$pat >/dev/null 2>&1; then
        f=$(find /usr /opt -name "$pat*" 2>/dev/null | head -n 1)
        [ -n "$f" ] && LDP="$LDP:$(dirname "$f")"
    fi
done
export LD_LIBRARY_PATH="$LDP:${LD_LIBRARY_PATH:-}"
export OMP_WAIT_POLICY=passive
ND="$BUILD/bin/nd"

log "== host: $(uname -m), $(nproc) cores; LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
nvidia-smi 2>&1 | tee -a "$LOG"
ND_BIN="$ND" sh scripts/doctor.sh 2>&1 | tee -a "$LOG"
if ! "$ND" -e 'print("nd starts")' >>"$LOG" 2>&1; then
    log "!! $ND does not start; its libraries:"
    ldd "$ND" "$BUILD/lib/nd/libnd_cuda.so" 2>&1 | tee -a "$LOG"
    exit 1
fi
ldd "$BUILD/lib/nd/libnd_cuda.so" | grep -E 'cud|cublas|not found' | tee -a "$LOG"
"$ND" -e 'print("nd.cuda.available:", nd.cuda.available()); if nd.cuda.available() then local i = nd.cuda.deviceInfo(); print(i.name, i.capability, i.memory) end' 2>&1 | tee -a "$LOG"

# shellcheck disable=SC2046
stage specs "${SPEC_S:-150}" "$OUT/specs.txt" "$ND" scripts/spec_runner.lua $(ls tests/spec/cuda*_spec.lua)
# shellcheck disable=SC2086
stage bench "${BENCH_S:-230}" "$OUT/bench.txt" "$ND" bench/gpu.lua --steps 15 --warm 3 --budget 20 --tsv "$OUT/bench.tsv" ${BENCH_ARGS:-}

full_tmp=1
for f in data_batch_1 data_batch_2 data_batch_3 data_batch_4 data_batch_5 test_batch; do
    [ -f "/tmp/nd-data/cifar10/$f.bin" ] || full_tmp=0
done
if [ -f data/cache/cifar10/test_batch.bin ]; then
    DATA="--dataset cifar10"
elif [ $full_tmp = 1 ]; then
    export ND_DATA_DIR=/tmp/nd-data
    DATA="--dataset cifar10"
elif [ -f "$BUILD/gpu-data/cifar10/test_batch.bin" ]; then
    export ND_DATA_DIR="$PWD/$BUILD/gpu-data"
    DATA="--dataset cifar10"
else
    DATA="--dataset synthetic"
fi
RUN=$(mktemp -d)
# shellcheck disable=SC2086
stage train "${TRAIN_S:-130}" "$OUT/train.txt" env ND_CUDA_TF32="${TRAIN_TF32:-${ND_CUDA_TF32:-0}}" "$ND" scripts/train.lua --model vgg11 --norm deconv $DATA \
    --device cuda --epochs "${TRAIN_EPOCHS:-2}" --progress lines --out "$RUN/run"
[ -f "$RUN/run/summary.json" ] && cp "$RUN/run/summary.json" "$OUT/train-summary.json"
[ -f "$RUN/run/log.tsv" ] && cp "$RUN/run/log.tsv" "$OUT/train-log.tsv"
rm -rf "$RUN"
log "== stages:$status"
