# SPDX-License-Identifier: GPL-2.0
# leaklab: top-level build. `make run` and `make test` are the two commands a
# newcomer needs; everything else is a step they depend on.
#
#   make setup                  install what is missing (idempotent)
#   make kernel  [ARCH=...]     build or reuse the cached Rust+kmemleak kernel
#                [DEBIAN=6.1|6.12]  or fetch Debian 12's own kernel and headers
#                [VARIANT=debug]  the test kernel with lockdep and hung-task checks
#                [VARIANT=nokmemleak]  a distribution-like kernel: tracing, no kmemleak
#   make module  [ARCH=...]     build leaklab.ko   (KDIR=... for your own tree)
#   make example [ARCH=...]     build examples/leaky_driver into build/ARCH/examples/
#   make tool    [ARCH=...]     build the host tool, the static guest binary and its busybox
#   make tools                  the host's leaklab and both guests' in one cargo run (make test does)
#   make run     [ARCH=...]     boot QEMU and run the main job (CPUS=, MEMORY= MiB)
#   make try KO=my.ko [CYCLES= PARAMS= EXERCISE= FORMAT= ARCH= KDIR=]  check your own module in a VM
#   make try SRC=my/driver/dir [DEBIAN=6.1|6.12] [ARCH=] [CYCLES= PARAMS= EXERCISE= FORMAT=]
#                               build it from source against Debian's own kernel
#                               (or the project's), then check it there (scripts/try.sh)
#   make test    [TEST_THREADS=3]  unit tests, both module builds, VM tests on both ARCHs
#   make failed-init-repeat     the failed-init check 20 times on each kernel (FAILED_INIT_RUNS=)
#   make check                  rustfmt and the kernel's CLIPPY=1 on the module
#   make bench   [ARCH=...]     speed and memory figures into BENCHMARKS.md
#   make boots   [ARCH=...]     the main job over 40 fresh boots: how many exit 0
#   make recall  [ARCH=...]     measure kmemleak's recall on the leaky samples
#   make recall-unhelped [ARCH=...]  the same for modules without the lab's help, against LKFT and syzkaller
#   make scan-time [ARCH=...]   one kmemleak scan's cost at 512 MiB, 2 GiB, 4 GiB
#   make soak    [ARCH=...]     1000 load/run/unload cycles, fixed then leaky, with a plot
#   make sweep   [SWEEP_DEBIAN=6.12] [ARCH=] [JOBS=2] [ONLY=...]  every module of Debian's kernel, in guests
#   make debian-modules DEBIAN=6.1|6.12 [ARCH=]  Debian's module tree, for a sweep
#   make debian-dbg DEBIAN=6.1|6.12 [ARCH=]  its modules' debug files (1 GB), for a sweep's lines
#   make bundle  [ARCH=arm64] [KDIR=...]  a tarball for a board (build/leaklab-bundle-ARCH.tar.gz)
#   make rust-analyzer          rust-project.json for the module, checked
#   make lava    [ARCH=...] [SABOTAGED=1]  the matrix as a LAVA job, run by LAVA's own dispatcher
#   make docs-commands          Documentation/commands.md from the tool's --help
#
# ARCH is x86_64 (default) or arm64; LLVM=1 builds with clang/lld instead of gcc.

SHELL := /bin/bash

ARCH ?= x86_64
# The tests of `make test` run at once (each VM test boots its own guests).
TEST_THREADS ?= 3
override ARCH := $(patsubst aarch64,arm64,$(ARCH))
ifeq ($(filter x86_64 arm64,$(ARCH)),)
$(error ARCH must be x86_64 or arm64, not '$(ARCH)')
endif

# Expensive builds (kernels, cargo's target dir) live outside the clone.
LEAKLAB_CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/leaklab
export LEAKLAB_CACHE
export CARGO_TARGET_DIR ?= $(LEAKLAB_CACHE)/target
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER ?= aarch64-linux-gnu-gcc
export CARGO_TERM_QUIET ?= true

BUILD := $(CURDIR)/build
# VARIANT=debug: the test kernel with lockdep and the hung-task detector
# (qemu/debug.config), and the module built for it, in build/ARCH-debug/.
# DEBIAN=6.1|6.12: Debian 12's own kernel (no Rust, no kmemleak), fetched as
# packages (scripts/debian-kernel.sh), in build/debian-VERSION-ARCH/.
ifneq ($(DEBIAN),)
ifneq ($(VARIANT),)
$(error DEBIAN and VARIANT do not go together: Debian's kernel has no variants)
endif
OUT := $(BUILD)/debian-$(DEBIAN)-$(ARCH)
else
OUT := $(BUILD)/$(ARCH)$(if $(VARIANT),-$(VARIANT))
endif
RESULTS := $(BUILD)/results
# The host's triple, asked of rustc when a recipe needs it (after setup).
HOST_TRIPLE = $(shell rustc -vV | sed -n 's/^host: //p')
# The host's leaklab, put there by `make tool`.
HOST_TOOL = $(BUILD)/leaklab

musl_x86_64 := x86_64-unknown-linux-musl
musl_arm64 := aarch64-unknown-linux-musl
cross_arm64 := aarch64-linux-gnu-

# What kbuild gets: ARCH, and CROSS_COMPILE or LLVM.
KBUILD_ARGS = ARCH=$(ARCH) $(if $(LLVM),LLVM=$(LLVM),$(if $(cross_$(ARCH)),CROSS_COMPILE=$(cross_$(ARCH))))
# A user's own kernel tree (KDIR=...) wins over the cached one.
KDIR_OF = $(or $(KDIR),$(shell cat $(OUT)/kdir 2>/dev/null))

.PHONY: all setup kernel module example debian-examples debian-modules debian-dbg sweep failed-init-repeat watch-soak tools tool run try lesson prove docs test check bench boots recall recall-unhelped soak scan-time sabotaged bundle rust-analyzer lava docs-commands clean
all: module tool

setup:
	@bash scripts/setup.sh

kernel: setup
ifneq ($(DEBIAN),)
	@mkdir -p $(OUT)
	@dir=$$(bash scripts/debian-kernel.sh $(DEBIAN) $(ARCH)) && \
	cp "$$dir/kdir" $(OUT)/kdir && cp "$$dir/release" $(OUT)/release && \
	ln -sfn "$$dir/kernel-image" $(OUT)/kernel-image && \
	echo "kernel: Debian's $$(cat $$dir/release) ready in $$dir"
else ifeq ($(KDIR),)
	@mkdir -p $(OUT)
	@kdir=$$(LLVM=$(LLVM) bash qemu/build-kernel.sh $(ARCH) $(VARIANT)) && \
	echo "$$kdir" > $(OUT)/kdir && \
	ln -sfn "$$kdir/leaklab-image" $(OUT)/kernel-image && \
	cp "$$kdir/samples/rust/rust_minimal.ko" $(OUT)/ && \
	{ [ ! -f "$$kdir/samples/kmemleak/kmemleak-test.ko" ] || cp "$$kdir/samples/kmemleak/kmemleak-test.ko" $(OUT)/; } && \
	echo "kernel: $(ARCH)$(if $(VARIANT), $(VARIANT)) ready in $$kdir"
else
	@echo "kernel: using KDIR=$(KDIR)"
endif

module: kernel
	@test -n "$(KDIR_OF)" || { echo "module: no kernel tree: run 'make kernel' or pass KDIR=" >&2; exit 2; }
ifeq ($(VARIANT),)
	@# kbuild does not notice another tree of the same ARCH (its struct
	@# module may differ): start clean then.
	@# (Not kbuild's clean: it would sweep every .ko under build/ too.)
	@[ "$$(cat .leaklab-built-for 2>/dev/null)" = "$(KDIR_OF) $(KBUILD_ARGS)" ] || \
		rm -f $(IN_TREE_OUTPUTS)
	$(MAKE) -C $(KDIR_OF) M=$(CURDIR) $(KBUILD_ARGS) modules
	@echo "$(KDIR_OF) $(KBUILD_ARGS)" > .leaklab-built-for
	@mkdir -p $(OUT) && cp leaklab.ko $(OUT)/leaklab.ko
else
	@$(call copy_sources,$(OUT)/src)
	$(MAKE) -C $(KDIR_OF) M=$(OUT)/src $(KBUILD_ARGS) modules
	@cp $(OUT)/src/leaklab.ko $(OUT)/leaklab.ko
endif
	@$(call check_sabotaged,$(OUT)/leaklab.ko,0)

# The C example driver, built from a copy in $(OUT)/examples/leaky_driver (the source
# directory stays clean, and each ARCH keeps its own objects). Its .ko sits in
# a subdirectory: every build/ARCH/*.ko goes into the VM.
EXAMPLE_SRC = $(OUT)/examples/leaky_driver
EXAMPLE_FILES := Kbuild Makefile leaky_driver.c
example: kernel $(addprefix $(EXAMPLE_SRC)/,$(EXAMPLE_FILES))
	@test -n "$(KDIR_OF)" || { echo "example: no kernel tree: run 'make kernel' or pass KDIR=" >&2; exit 2; }
	@# Another tree of the same ARCH (KDIR=): start clean, as for the module.
	@[ "$$(cat $(EXAMPLE_SRC)/.built-for 2>/dev/null)" = "$(KDIR_OF) $(KBUILD_ARGS)" ] || \
		$(MAKE) -s -C $(KDIR_OF) M=$(EXAMPLE_SRC) $(KBUILD_ARGS) clean
	$(MAKE) -C $(KDIR_OF) M=$(EXAMPLE_SRC) $(KBUILD_ARGS) modules
	@echo "$(KDIR_OF) $(KBUILD_ARGS)" > $(EXAMPLE_SRC)/.built-for
	@cmp -s $(EXAMPLE_SRC)/leaky_driver.ko $(OUT)/examples/leaky_driver.ko || \
		cp $(EXAMPLE_SRC)/leaky_driver.ko $(OUT)/examples/leaky_driver.ko
	@$(call check_elf,$(OUT)/examples/leaky_driver.ko)

# Puts file $(1) at $(2) when it differs, by a rename: a program still
# running from $(2) (a test's leaklab) keeps its own copy.
put = cmp -s $(1) $(2) || { cp $(1) $(2).tmp && mv -f $(2).tmp $(2); }

# Copied only when changed, so that kbuild finds nothing to redo.
$(EXAMPLE_SRC)/%: examples/leaky_driver/%
	@mkdir -p $(@D) && cp $< $@

# The host's leaklab and both guests' in one cargo run: each is built with
# link-time optimization in one codegen unit, on one core, so several at
# once use every core. `make tool` then finds them built. Release builds
# are kept in the cache by their inputs (scripts/release-build.sh): a
# fresh clone of sources built before builds nothing.
tools: setup
	@bash scripts/release-build.sh $(HOST_TRIPLE) $(musl_x86_64) $(musl_arm64) > /dev/null

tool: setup
	@mkdir -p $(BUILD) $(OUT)
	@built=$$(bash scripts/release-build.sh $(HOST_TRIPLE) $(musl_$(ARCH))) && bins=($$built) && \
		{ $(call put,$${bins[0]},$(BUILD)/leaklab); } && { $(call put,$${bins[1]},$(OUT)/leaklab); }
	@# The guest's shell and tools (sh, insmod, cat, ...): `leaklab vm` puts
	@# the busybox beside the guest leaklab into the initramfs.
	@bb=$$(bash scripts/busybox.sh $(ARCH)) && $(call put,"$$bb",$(OUT)/busybox)
	@$(call check_elf,$(OUT)/leaklab $(OUT)/busybox)

# The guest's shape: CPUS=8 MEMORY=4096 (MiB) models a Rock 5B+ on arm64.
VM_SHAPE = $(if $(CPUS),--cpus $(CPUS)) $(if $(MEMORY),--memory $(MEMORY))

# The main job: leaklab matrix in a fresh VM. The console log, the JSON and
# the KTAP land in $(RESULTS); the table is printed; the status is the matrix's.
run: module tool
	@mkdir -p $(RESULTS)
	@$(HOST_TOOL) vm --arch $(ARCH) --build-dir $(BUILD) --log $(RESULTS)/matrix-$(ARCH).log $(VM_SHAPE) \
		-- matrix --format json > $(RESULTS)/matrix-$(ARCH).json; status=$$?; \
	if [ -s $(RESULTS)/matrix-$(ARCH).json ]; then \
		$(HOST_TOOL) show $(RESULTS)/matrix-$(ARCH).json; \
		$(HOST_TOOL) show --format ktap $(RESULTS)/matrix-$(ARCH).json > $(RESULTS)/matrix-$(ARCH).ktap; \
		$(HOST_TOOL) show --format html $(RESULTS)/matrix-$(ARCH).json > $(RESULTS)/matrix-$(ARCH).html; \
		echo "results: $(RESULTS)/matrix-$(ARCH).{log,json,ktap,html}"; \
	fi; exit $$status

# Check a module of yours in a fresh VM (none of the lab's help), on the
# project's kernel, a tree of yours (KDIR=) or Debian's own (DEBIAN=6.1|6.12):
#   make try KO=path/to/my.ko | SRC=path/to/driver/dir [CYCLES=3]
#            [PARAMS="bug=1 debug=0"] [EXERCISE=poke.sh] [FORMAT=json|ktap]
#            [ARCH=arm64] [KDIR=your kernel tree | DEBIAN=6.12] [CPUS= MEMORY=]
# A shortcut for scripts/try.sh, which builds SRC against the kernel's
# headers and exits with leaklab check's own status (0 clean, 1 leaks, 3
# inconclusive): make turns any failing step into 2, so use the script
# where the status matters. The verdict goes to stdout, the console log to
# $(RESULTS)/try-[debian-VERSION-]ARCH.log; the last line on stderr names
# check's status.
try:
	@test -n "$(KO)$(SRC)" || { echo "try: say which module: make try SRC=path/to/driver/dir or KO=path/to/my.ko" >&2; exit 2; }
	@bash scripts/try.sh --arch $(ARCH) $(if $(DEBIAN),--debian $(DEBIAN)) $(if $(KDIR),--kdir $(KDIR)) \
		$(if $(EXERCISE),--exercise $(EXERCISE)) $(if $(CPUS),--cpus $(CPUS)) $(if $(MEMORY),--memory $(MEMORY)) \
		$(or $(SRC),$(KO)) -- $(if $(filter command line environment,$(origin CYCLES)),--cycles $(CYCLES)) \
		$(foreach p,$(PARAMS),--param $(p)) $(if $(FORMAT),--format $(FORMAT))

test: setup
	$(MAKE) --no-print-directory tools
	$(MAKE) --no-print-directory module example tool sabotaged ARCH=x86_64
	$(MAKE) --no-print-directory module example tool sabotaged bundle ARCH=arm64
	$(MAKE) --no-print-directory module VARIANT=debug ARCH=x86_64
	$(MAKE) --no-print-directory module example VARIANT=nokmemleak ARCH=x86_64
	$(MAKE) --no-print-directory module example VARIANT=nokmemleak ARCH=arm64
	$(MAKE) --no-print-directory debian-examples
	$(MAKE) --no-print-directory debian-modules DEBIAN=6.12 ARCH=x86_64
	$(MAKE) --no-print-directory debian-dbg DEBIAN=6.12 ARCH=x86_64
	$(MAKE) --no-print-directory check rust-analyzer ARCH=x86_64
	@# Every test in the debug build, where an overflowing addition panics
	@# instead of wrapping; the guests run the release build of the guest's
	@# leaklab. TEST_THREADS guests at once: one waiting out kmemleak's
	@# minimum age leaves its core idle.
	cd userspace && LEAKLAB_BUILD_DIR=$(BUILD) LEAKLAB_KSRC=$$(cat $(BUILD)/x86_64/kdir)/source \
		LEAKLAB_PROMTOOL=$$(bash $(CURDIR)/scripts/promtool.sh) \
		cargo test -- --include-ignored --test-threads=$(TEST_THREADS)

# The example driver built against Debian 12's own 6.1 and 6.12 headers,
# both ARCHs, beside the kernels (fetched as packages into the cache).
debian-examples:
	@for v in 6.1 6.12; do for a in x86_64 arm64; do \
		$(MAKE) --no-print-directory example DEBIAN=$$v ARCH=$$a || exit 1; \
	done; done

# The module tree of Debian's own kernel (DEBIAN=6.1|6.12, ARCH=), unpacked
# and decompressed in the cache, for a sweep: build/debian-V-ARCH/modules.
debian-modules: kernel
	@test -n "$(DEBIAN)" || { echo "debian-modules: name the kernel: DEBIAN=6.1 or DEBIAN=6.12" >&2; exit 2; }
	@tree=$$(bash scripts/debian-modules.sh $(DEBIAN) $(ARCH)) && ln -sfn "$$tree" $(OUT)/modules && \
		echo "debian-modules: $$(ls "$$tree"/kernel -R | grep -c '\.ko$$') modules in $$tree"

# The modules' debug files of Debian's own kernel (DEBIAN=6.1|6.12, ARCH=),
# from its -dbg package (1 GB, once, into the cache): build/debian-V-ARCH/debug,
# for a sweep's source lines (make sweep uses it when there).
debian-dbg: kernel
	@test -n "$(DEBIAN)" || { echo "debian-dbg: name the kernel: DEBIAN=6.1 or DEBIAN=6.12" >&2; exit 2; }
	@tree=$$(bash scripts/debian-dbg.sh $(DEBIAN) $(ARCH)) && ln -sfn "$$tree" $(OUT)/debug && \
		echo "debian-dbg: $$(find "$$tree"/kernel -name '*.ko' | wc -l) modules' debug files in $$tree"

# Every module of Debian's kernel swept in guests, JOBS at once (resumable:
# run it again to go on): make sweep [SWEEP_DEBIAN=6.12] [ARCH=] [JOBS=2]
# [SWEEP_CYCLES=2] [ONLY='snd_* kernel/crypto/*'] [SWEEP_OUT=build/results/sweep-V-ARCH]
SWEEP_DEBIAN ?= 6.12
sweep: setup
	$(MAKE) --no-print-directory tool ARCH=$(ARCH)
	$(MAKE) --no-print-directory debian-modules DEBIAN=$(SWEEP_DEBIAN) ARCH=$(ARCH)
	$(HOST_TOOL) sweep --in-guests --arch $(ARCH) --build-dir $(BUILD) \
		--kernel $(BUILD)/debian-$(SWEEP_DEBIAN)-$(ARCH)/kernel-image \
		--modules-dir $(BUILD)/debian-$(SWEEP_DEBIAN)-$(ARCH)/modules \
		--jobs $(or $(JOBS),2) --cycles $(or $(SWEEP_CYCLES),2) \
		$(if $(wildcard $(BUILD)/debian-$(SWEEP_DEBIAN)-$(ARCH)/debug/kernel),--debug-dir $(BUILD)/debian-$(SWEEP_DEBIAN)-$(ARCH)/debug) \
		--out $(or $(SWEEP_OUT),$(BUILD)/results/sweep-$(SWEEP_DEBIAN)-$(ARCH)) $(ONLY)

# The failed-init check 20 times in a row on the project's kernels and on
# Debian's (make test runs it 3 times): make failed-init-repeat
FAILED_INIT_RUNS ?= 20
failed-init-repeat: setup debian-examples
	$(MAKE) --no-print-directory example tool ARCH=x86_64
	$(MAKE) --no-print-directory example tool ARCH=arm64
	cd userspace && LEAKLAB_BUILD_DIR=$(BUILD) LEAKLAB_FAILED_INIT_RUNS=$(FAILED_INIT_RUNS) \
		cargo test --release --test vm -- --include-ignored check_on_debian check_later_patterns

# The watch's own memory over 1000 rounds at a 10 ms interval, both ARCHs
# (make test runs 200): make watch-soak [WATCH_ROUNDS=1000]
WATCH_ROUNDS ?= 1000
watch-soak: setup
	$(MAKE) --no-print-directory example tool ARCH=x86_64
	$(MAKE) --no-print-directory example tool ARCH=arm64
	cd userspace && LEAKLAB_BUILD_DIR=$(BUILD) LEAKLAB_WATCH_ROUNDS=$(WATCH_ROUNDS) \
		cargo test --release --test vm -- --include-ignored watch_memory

check: kernel
	@# The samples are named: rustfmt does not follow the modules that
	@# samples/mod.rs declares through its macro.
	rustfmt --edition 2021 --check --config-path $(KDIR_OF)/source/.rustfmt.toml module/leaklab.rs samples/*.rs
	cd userspace && cargo fmt --check
	cd userspace && cargo clippy --all-targets -- -D warnings
	@mkdir -p $(BUILD)
	@# pipefail: a build that fails must fail the gate, not only its warnings.
	touch module/leaklab.rs && set -o pipefail && \
		$(MAKE) -C $(KDIR_OF) M=$(CURDIR) $(KBUILD_ARGS) CLIPPY=1 modules 2>&1 | tee $(BUILD)/clippy.log
	@! grep -q '^warning\|^error' $(BUILD)/clippy.log || { echo "check: the module is not clippy-clean" >&2; exit 1; }
	@# Kbuild's checks of the kernel's private layouts the samples rely on,
	@# each shown stopping a build where the tree does otherwise.
	@for v in arc_inner root_device; do \
		! $(MAKE) -s -C $(KDIR_OF) M=$(CURDIR) $(KBUILD_ARGS) $$v=changed modules >/dev/null 2>&1 || \
		{ echo "check: Kbuild's $$v check let a changed layout build" >&2; exit 1; }; \
	done

# Speed and memory figures as ratios within one run, into BENCHMARKS.md:
# make bench [ARCH=] [NO_COLD=1] [LOOPS=1] (NO_COLD skips the cold kernel build;
# LOOPS=1 runs only the trace's loop figures and prints them, writing nothing).
bench: module tool example
	@# The C driver's loop runs on Debian's 6.12 too (fetched into the cache).
	$(MAKE) --no-print-directory example DEBIAN=6.12 ARCH=$(ARCH)
	python3 scripts/bench.py $(HOST_TOOL) $(BUILD) $(ARCH) $(if $(NO_COLD),--no-cold) $(if $(LOOPS),--loops)

# The course (Documentation/patterns/README.md): `make lesson
# LESSON=error_path-c` copies the lesson's code to build/lessons/, `make
# prove LESSON=error_path-c` builds the copy and checks it in QEMU (make
# turns its failure into 2: scripts/lesson.sh prove passes check's own
# status through).
lesson:
	@bash scripts/lesson.sh start $(LESSON)
prove:
	@bash scripts/lesson.sh prove $(LESSON)

# The docs' sample outputs, from real runs: each `<!-- sample: ... -->`
# block in README.md and Documentation/ rewritten with what its command
# prints now, masked (scripts/docs.py; `make test` compares them).
docs:
	python3 scripts/docs.py update

# The main job over fresh boots: how many exit 0 (a measurement, not a
# test): make boots [ARCH=] [BOOTS=40]
boots: module tool
	bash scripts/boots.sh $(BUILD)/leaklab $(BUILD) $(ARCH) $(if $(filter command line environment,$(origin BOOTS)),$(BOOTS),40)

# kmemleak's recall on the leaky samples over BOOTS fresh boots (a
# measurement, not a test): make recall [ARCH=] [BOOTS=20]
BOOTS ?= 20
recall: module tool
	bash scripts/recall.sh $(BUILD)/leaklab $(BUILD) $(ARCH) $(BOOTS)

# kmemleak's recall on modules without the lab's help (the C example driver
# and kmemleak-test) and the time to a verdict, leaklab check against LKFT's
# and syzkaller's harvests in the same boots (a measurement, not a test):
# make recall-unhelped [ARCH=] [BOOTS=20]
recall-unhelped: example tool
	bash scripts/recall-unhelped.sh $(BUILD)/leaklab $(BUILD) $(ARCH) $(BOOTS)

# What an in-tree module build leaves beside the sources.
IN_TREE_OUTPUTS = leaklab.ko leaklab.o leaklab.mod leaklab.mod.c leaklab.mod.o \
	.module-common.o modules.order Module.symvers .*.cmd module/*.o module/.*.cmd module/ffi_generated.rs

# The module's sources, copied to build elsewhere (a bundle, a test variant).
MODULE_SOURCES := Kbuild $(wildcard module/*.rs module/*.c module/*.h samples/*.rs)
copy_sources = rm -rf $(1) && mkdir -p $(1)/module $(1)/samples && \
	for f in $(MODULE_SOURCES); do cp $$f $(1)/$$f; done
# Fails unless every file is an ELF object for $(ARCH).
elf_machine_x86_64 := X86-64
elf_machine_arm64 := AArch64
check_elf = for f in $(1); do readelf -h $$f | grep -q 'Machine:.*$(elf_machine_$(ARCH))' || \
	{ echo "$$f is not an $(ARCH) ELF object" >&2; exit 1; }; done

# Fails (and removes the .ko) unless its modinfo says sabotaged=$(2): the
# module's leaky dispatch and that marker follow the same cfg
# (SABOTAGED in module/leaklab.rs).
check_sabotaged = tr '\0' '\n' < $(1) | grep -qx 'sabotaged=$(2)' || \
	{ rm -f $(1); echo "$(1): modinfo does not say sabotaged=$(2) (LEAKLAB_SABOTAGED, Kbuild)" >&2; exit 1; }

# For the tests: leaklab.ko whose leaky variants run the fixed code, so that
# nothing leaks; `leaklab doctor`'s canary must fail on it.
SABOTAGED_DIR := $(OUT)/sabotaged
sabotaged: kernel $(SABOTAGED_DIR)/leaklab.ko
# Built from a copy (its objects must not mix with the real module's) with
# LEAKLAB_SABOTAGED=1, which Kbuild turns into `--cfg leaklab_sabotaged`.
$(SABOTAGED_DIR)/leaklab.ko: $(MODULE_SOURCES) $(OUT)/kdir
	@$(call copy_sources,$(SABOTAGED_DIR))
	$(MAKE) -C $(KDIR_OF) M=$(SABOTAGED_DIR) $(KBUILD_ARGS) LEAKLAB_SABOTAGED=1 modules
	@$(call check_sabotaged,$@,1)

# What a board needs, in one tarball: leaklab.ko built for its kernel
# (KDIR=... for a board's own tree), the static leaklab, the reference
# modules when the tree has them, the config fragments and a short README.
BUNDLE := $(BUILD)/leaklab-bundle-$(ARCH)
bundle: kernel tool
	@test -n "$(KDIR_OF)" || { echo "bundle: no kernel tree: pass KDIR=" >&2; exit 2; }
	@$(call copy_sources,$(BUNDLE).src)
	$(MAKE) -C $(KDIR_OF) M=$(BUNDLE).src $(KBUILD_ARGS) modules
	@rm -rf $(BUNDLE) && mkdir -p $(BUNDLE)
	@cp $(BUNDLE).src/leaklab.ko $(OUT)/leaklab qemu/common.config $(BUNDLE)/
	@cp Documentation/boards/README-board.txt Documentation/boards/leaklab-watch.service $(BUNDLE)/
	@if [ $(ARCH) = arm64 ]; then cp qemu/board-rk3588.config $(BUNDLE)/; fi
	@for ko in samples/kmemleak/kmemleak-test.ko samples/rust/rust_minimal.ko; do \
		if [ -f $(KDIR_OF)/$$ko ]; then cp $(KDIR_OF)/$$ko $(BUNDLE)/; \
		else echo "bundle: $(KDIR_OF) has no $$ko: the matrix will run without that reference"; fi; \
	done
	@$(call check_elf,$(BUNDLE)/leaklab $(BUNDLE)/*.ko)
	@tar czf $(BUNDLE).tar.gz -C $(BUILD) $(notdir $(BUNDLE))
	@echo "bundle: $(BUNDLE).tar.gz ($(ARCH), for kernel $$(tr '\0' '\n' < $(BUNDLE)/leaklab.ko | sed -n 's/^vermagic=\([^ ]*\).*/\1/p'))"

# leaklab as a LAVA test, proven with LAVA's own dispatcher: `leaklab lava
# job` writes the QEMU job (the kernel, leaklab's initramfs, monitors that
# read its KTAP), Debian 12's lava-run runs it (scripts/lava.sh unpacks the
# packages into the cache: nothing is installed, no service started), and
# `leaklab lava results` gates on its test cases. make lava [ARCH=]
# [SABOTAGED=1] (the sabotaged leaklab.ko: its leaky rows fail, and so does
# make). Job, log and results in build/results/lava-ARCH[-sabotaged]/.
lava: module tool $(if $(SABOTAGED),sabotaged)
	bash scripts/lava-job.sh $(HOST_TOOL) $(BUILD) $(ARCH) $(if $(SABOTAGED),sabotaged)

# Hours of use in minutes (a measurement, not part of make test): CYCLES
# load/run/unload cycles with the fixed variants, then again with one leaky
# sample a cycle; figures, bounds and an SVG plot into build/results/.
# make soak [ARCH=] [CYCLES=1000] [LEAKY=error_path]
CYCLES ?= 1000
LEAKY ?= error_path
soak: module tool
	python3 scripts/soak.py $(HOST_TOOL) $(BUILD) $(ARCH) $(CYCLES) $(LEAKY)

# One kmemleak scan's cost at several guest memory sizes (a measurement):
# make scan-time [ARCH=] [SIZES="512 2048 4096"]
SIZES ?= 512 2048 4096
scan-time: module tool
	bash scripts/scan-time.sh $(HOST_TOOL) $(BUILD) $(ARCH) $(SIZES)

# rust-project.json for an editor, from the kernel's own generator. With M=,
# 6.12 reads rust/Makefile relative to the object tree, which an O= build
# (the cached kernel, with its sources in KDIR/source) does not have: VPATH
# points it at the source tree, as kbuild does for an O= build without M=.
# scripts/rust-analyzer.py then adds the module's crate (the generator only
# finds crate roots named by a Kbuild beside them), lets rust-analyzer load
# the sysroot crates once (6.12 lists them and names the sysroot too, which
# hides every primitive type's methods), and checks the result (the kernel
# crate and the module's, their roots, the proc macros).
rust-analyzer: kernel
	@test -n "$(KDIR_OF)" || { echo "rust-analyzer: no kernel tree: run 'make kernel' or pass KDIR=" >&2; exit 2; }
	$(MAKE) -C $(KDIR_OF) M=$(CURDIR) $(KBUILD_ARGS) \
		$(if $(wildcard $(KDIR_OF)/source),VPATH=$(realpath $(KDIR_OF)/source)) rust-analyzer
	python3 scripts/rust-analyzer.py rust-project.json leaklab module/leaklab.rs

# The command reference, from the host tool's own --help (make test fails
# when the checked-in page differs: userspace/tests/commands_doc.rs).
docs-commands: tool
	bash scripts/docs-commands.sh $(HOST_TOOL) > Documentation/commands.md.tmp
	mv Documentation/commands.md.tmp Documentation/commands.md

clean:
	-$(if $(KDIR_OF),$(MAKE) -C $(KDIR_OF) M=$(CURDIR) $(KBUILD_ARGS) clean)
	rm -rf $(BUILD) .leaklab-built-for
