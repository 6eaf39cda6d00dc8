# nd: `make` builds build/bin/nd (the interpreter, Lua 5.4 linked statically) and
# build/lib/nd/core.so (the binding for stock lua5.4 and busted).
# Switches: DEBUG=1 (no optimisation, -g), CUDA=1 (the GPU path; auto when nvcc exists),
# CUDA_ARCH=sm_90, SAN=1 (AddressSanitizer + UBSan; used by `make asan`).

CC      ?= cc
BUILD   ?= build
LUA_INC ?= /usr/include/lua5.4
LUA_A   ?= /usr/lib/x86_64-linux-gnu/liblua5.4.a
BLAS_INC ?= $(firstword $(wildcard /usr/include/x86_64-linux-gnu/openblas-pthread /usr/include/openblas /usr/include))

CFLAGS  := -std=c11 -D_GNU_SOURCE -Wall -Wextra -fPIC -fopenmp -Isrc/core -Isrc/cpu -Isrc/cuda -Isrc/data -Isrc/lua -I$(LUA_INC) -I$(BLAS_INC) $(shell pkg-config --cflags libpng 2>/dev/null)
ifeq ($(DEBUG),1)
  CFLAGS += -O0 -g
else
  CFLAGS += -O2 -march=x86-64-v3 -g
endif
ifeq ($(SAN),1)
  CFLAGS += -fsanitize=address,undefined -fno-omit-frame-pointer
  LDSAN  := -fsanitize=address,undefined
  BUILD  := build-asan
endif
LIBS    := -lopenblas -lpng -lz -lm -lpthread -fopenmp

# CUDA: on when nvcc is found (CUDA=0 turns it off; never with SAN=1). The arch is read from the
# first GPU (nvidia-smi), else sm_90 (H100/H200); CUDA_ARCH=sm_80 overrides. PTX is embedded too.
CUDA_HOME ?= /usr/local/cuda
NVCC      ?= $(firstword $(wildcard $(CUDA_HOME)/bin/nvcc) $(shell command -v nvcc 2>/dev/null))
ifeq ($(SAN),1)
  CUDA := 0
endif
CUDA ?= $(if $(NVCC),1,0)
ifeq ($(CUDA),1)
  CUDA_ARCH ?= $(or $(shell nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n1 | tr -d ' .' | sed 's/^/sm_/'),sm_90)
  CUDA_CC   := $(subst sm_,,$(CUDA_ARCH))
  NVCCFLAGS := -O2 -std=c++17 -lineinfo -gencode arch=compute_$(CUDA_CC),code=[sm_$(CUDA_CC),compute_$(CUDA_CC)] \
               -Xcompiler -fPIC,-fopenmp -DND_WITH_CUDA -Isrc/core -Isrc/cpu -Isrc/cuda
  CUDA_LIBS := -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcudnn -lcublas -lcudart -ldl -lrt
  CUDA_OBJ  := $(patsubst %.cu,$(BUILD)/obj/%.o,$(wildcard src/cuda/*.cu))
  CUDA_SO   := $(BUILD)/lib/nd/libnd_cuda.so
endif

CORE_SRC := $(wildcard src/core/*.c) $(wildcard src/cpu/*.c) $(wildcard src/data/*.c)
LUA_SRC  := $(wildcard src/lua/*.c)
REPL_SRC := $(wildcard src/repl/*.c)
CORE_OBJ := $(CORE_SRC:%.c=$(BUILD)/obj/%.o)
LUA_OBJ  := $(LUA_SRC:%.c=$(BUILD)/obj/%.o)
REPL_OBJ := $(REPL_SRC:%.c=$(BUILD)/obj/%.o)
CTEST_SRC := $(wildcard tests/c/*.c)
CTEST_OBJ := $(CTEST_SRC:%.c=$(BUILD)/obj/%.o)

ND_BIN  := $(BUILD)/bin/nd
CORE_SO := $(BUILD)/lib/nd/core.so
CTEST   := $(BUILD)/bin/nd-ctest

.PHONY: all deps test asan memcheck clean doctor demo data bench gpu-pack
all: $(ND_BIN) $(CORE_SO) $(CUDA_SO)

$(BUILD)/obj/%.o: %.c $(wildcard src/*/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/obj/%.o: %.cu $(wildcard src/*/*.h src/cuda/*.cuh)
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) -c $< -o $@

$(ND_BIN): $(CORE_OBJ) $(LUA_OBJ) $(REPL_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(LDSAN) -rdynamic -o $@ $^ $(LUA_A) -lreadline $(LIBS) -ldl

# The CUDA backend plugin: its core symbols come from the loader (nd or core.so), see cuda_loader.c.
$(CUDA_SO): $(CUDA_OBJ)
	@mkdir -p $(dir $@)
	$(CXX) -shared -o $@ $^ $(CUDA_LIBS) -fopenmp

$(CORE_SO): $(CORE_OBJ) $(LUA_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(LDSAN) -shared -o $@ $^ $(LIBS)

$(CTEST): $(CORE_OBJ) $(CTEST_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(LDSAN) -o $@ $^ $(LIBS)

# Installs the Debian packages nd needs (apt-get; sudo when not root).
deps:
	@sh scripts/deps.sh

test: deps all $(CTEST)
	@BUILD=$(BUILD) SAN=$(SAN) sh tests/run.sh

asan:
	@$(MAKE) --no-print-directory SAN=1 test

memcheck: all $(CTEST)
	valgrind --error-exitcode=1 --leak-check=full -q $(CTEST)

bench: all
	$(ND_BIN) bench/gemm.lua

demo: deps all
	@$(ND_BIN) scripts/demo.lua

# Datasets into data/cache (checksums verified): make data, make data-mnist, data-cifar10, ...
data: $(ND_BIN)
	sh data/get.sh all
data-%: $(ND_BIN)
	sh data/get.sh $*

doctor:
	@sh scripts/doctor.sh

# The GPU check's carry: build/gpu-carry.tar.xz (binaries, host libraries, a CIFAR-10 subset);
# on the GPU machine: sh scripts/gpu-check.sh (see that script).
gpu-pack:
	@BUILD=$(BUILD) sh scripts/gpu-check.sh pack

clean:
	rm -rf build build-asan
