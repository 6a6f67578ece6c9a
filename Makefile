# Thin wrapper over CMake. `make run` and `make test` are the two commands a
# fresh Debian 12 machine needs (see README.md). Build trees live in out*/.
OUT      ?= out
JOBS     ?= 2
CONFIG   ?= config.yml
CMAKE_FLAGS ?=

.PHONY: all build run test test-asan test-tsan bench clean deps install deb fuzz

all: build

deps:
	@packaging/deps.sh build

$(OUT)/CMakeCache.txt:
	cmake -S . -B $(OUT) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS)

build: deps $(OUT)/CMakeCache.txt
	cmake --build $(OUT) -j$(JOBS)

# Installs what builds need at run time (packaging/deps.sh run: buildah, runc),
# then starts waved in the foreground on its defaults (config.yml holds only
# documented defaults); Ctrl-C stops it cleanly.
run: build
	@packaging/deps.sh run
	./$(OUT)/waved --config $(CONFIG)

# Every unit and end-to-end test. One module: `ctest --test-dir out -R siphash`;
# one case inside it: `out/tests/test_siphash paper_vector`.
test:
	@packaging/deps.sh build run test
	$(MAKE) --no-print-directory build
	ctest --test-dir $(OUT) --output-on-failure -j$(JOBS)

test-asan:
	@packaging/deps.sh build run test
	$(MAKE) --no-print-directory build OUT=out-asan CMAKE_FLAGS=-DWAVED_ASAN=ON
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  ctest --test-dir out-asan --output-on-failure -j$(JOBS)

test-tsan:
	@packaging/deps.sh build run test
	$(MAKE) --no-print-directory build OUT=out-tsan CMAKE_FLAGS=-DWAVED_TSAN=ON
	TSAN_OPTIONS="halt_on_error=1 suppressions=$(CURDIR)/tests/tsan.supp" ctest --test-dir out-tsan --output-on-failure -j$(JOBS)

# libFuzzer targets (tests/fuzz, docs/security.md "Fuzzing"), built with clang in out-fuzz and
# run FUZZ_SECONDS each on their seed corpus; fails on a crash, leak or sanitizer report.
FUZZ_SECONDS ?= 10
fuzz:
	@packaging/deps.sh build fuzz
	cmake -S . -B out-fuzz -DCMAKE_C_COMPILER=clang-14 -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DWAVED_FUZZ=ON -DBUILD_TESTING=OFF
	cmake --build out-fuzz -j$(JOBS) --target fuzz_targets
	tests/fuzz/run.sh out-fuzz $(FUZZ_SECONDS)

bench:
	@packaging/deps.sh build bench
	$(MAKE) --no-print-directory build OUT=out-release CMAKE_FLAGS=-DCMAKE_BUILD_TYPE=Release
	bench/run.sh out-release

# Installs the binary, waved.service and, unless one exists, SYSCONFDIR/waved/
# config.yml (else config.yml.dist next to it); see docs/operations.md.
PREFIX     ?= /usr/local
SYSCONFDIR ?= /etc
DESTDIR    ?=
install: build
	cmake -S . -B $(OUT) -DCMAKE_INSTALL_PREFIX=$(PREFIX) -DCMAKE_INSTALL_SYSCONFDIR=$(SYSCONFDIR)
	cmake --build $(OUT) -j$(JOBS) --target waved
	DESTDIR=$(DESTDIR) cmake --install $(OUT)
	@echo "Installed. As root: systemctl daemon-reload && systemctl enable --now waved"

# A Debian package built from a copy of the tree (tracked and new files) in
# out-deb/src with packaging/debian as debian/; the .deb lands in out-deb/.
deb:
	@packaging/deps.sh build package
	rm -rf out-deb && mkdir -p out-deb/src
	git ls-files -z --cached --others --exclude-standard | \
	  tar --null -T - --ignore-failed-read -cf - 2>/dev/null | tar -xf - -C out-deb/src
	cp -r packaging/debian out-deb/src/debian
	cd out-deb/src && DEB_BUILD_OPTIONS="nocheck parallel=$(JOBS)" dpkg-buildpackage -b -us -uc
	@ls out-deb/*.deb

clean:
	rm -rf out out-asan out-tsan out-release out-deb out-fuzz
