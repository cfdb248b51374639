# libmoe: the two commands of the quick start are `make run` and `make test`.
# Each installs what it needs (Debian packages) and builds first.
BUILD ?= build
JOBS ?= $(shell nproc)
CONFIG ?= configs/bible-moe.json
MOE := $(BUILD)/moe
SRC_FILES = $(shell git ls-files '*.c' '*.h' '*.cu' '*.cuh' 2>/dev/null)

.PHONY: all deps deps-test build run test test-sanitize bench format lint install clean

all: build

deps:
	@scripts/install-deps.sh

deps-test:
	@scripts/install-deps.sh --with-torch

$(BUILD)/Makefile: CMakeLists.txt
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release

build: deps $(BUILD)/Makefile
	@cmake --build $(BUILD) -j $(JOBS)

## run: train the default model (MoE GPT on the King James Bible) for a few minutes
run: build
	$(MOE) train --config $(CONFIG)

## test: the whole suite through CTest (gradient checks, PyTorch parity, CLI)
test: deps-test build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

## test-sanitize: the same suite under AddressSanitizer + UBSan
test-sanitize: deps-test
	cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DMOE_SANITIZE=ON
	cmake --build build-asan -j $(JOBS)
	cd build-asan && ctest --output-on-failure -j $(JOBS)

## bench: libmoe vs its PyTorch twin, side by side (BENCHMARKS.md)
bench: deps-test build
	scripts/bench.sh $(BUILD)

format:
	clang-format -i $(SRC_FILES)

lint:
	clang-format --dry-run --Werror $(SRC_FILES)
	cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability \
	  --inline-suppr --suppress=missingIncludeSystem -I include -I src src tests/support

install: build
	cmake --install $(BUILD)

clean:
	rm -rf $(BUILD) build-asan
