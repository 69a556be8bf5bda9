# chat-bridge -- MQTT to Redis chat bridge.
#
#   make            build build/chat-bridge
#   make run        install missing packages, build, run with config/chat-bridge.yaml
#   make test       install missing packages, build, run unit + integration tests
#   make test-faults    build, run the fault-injection tests (a few minutes)
#   make check-memory   the same tests with the bridge and unit tests under valgrind
#   make lint       cppcheck
#
# CFLAGS, CPPFLAGS and LDFLAGS from the command line or environment are kept;
# the project's own flags are added to them.  V=1 prints full commands.

CC ?= cc
CFLAGS ?= -O2 -g
PKGS := hiredis jansson yaml-0.1 libsystemd
DEB_PACKAGES := build-essential pkg-config libpaho-mqtt-dev libhiredis-dev \
	libyaml-dev libjansson-dev libsystemd-dev libcmocka-dev \
	mosquitto mosquitto-clients redis-server redis-tools valgrind cppcheck openssl \
	systemd man-db groff-base clang libclang-rt-14-dev libmosquitto-dev gnuplot-nox

PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS = $(shell pkg-config --libs $(PKGS) 2>/dev/null)

override CFLAGS += -std=gnu11 -Wall -Wextra -Werror -pthread -MMD -MP $(PKG_CFLAGS)
override CPPFLAGS += -Ibridge -Ibuild -Itests/lib
LIBS := -lpaho-mqtt3as $(PKG_LIBS) -pthread

ifeq ($(V),1)
Q :=
quiet = @:
else
Q := @
quiet = @printf '  %-6s %s\n'
endif

B := build
BRIDGE_SRCS := $(filter-out bridge/main.c,$(wildcard bridge/*.c))
BRIDGE_OBJS := $(BRIDGE_SRCS:bridge/%.c=$(B)/%.o) $(B)/scripts.o
LUA := $(wildcard bridge/lua/*.lua)

UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(B)/tests/%)
ITEST_BIN := $(B)/tests/integration
SEED_BIN := $(B)/tests/seed     # tests/seed/ (see its block below)
ITEST_SRCS := $(wildcard tests/integration/*.c)
# tests/lib: the process and port helpers shared by the harness and the bench.
TEST_LIB := $(B)/tests/lib_sys.o
ITEST_OBJS := $(ITEST_SRCS:tests/integration/%.c=$(B)/tests/it_%.o) $(TEST_LIB)
FAULT_BIN := $(B)/tests/faults
FAULT_SRCS := $(filter-out tests/faults/test_diskfull.c,$(wildcard tests/faults/*.c))
FAULT_OBJS := $(FAULT_SRCS:tests/faults/%.c=$(B)/tests/ft_%.o) $(B)/tests/it_harness.o $(TEST_LIB)

.PHONY: all deps run test unit integration test-faults check-memory lint clean
all: $(B)/chat-bridge

$(B) $(B)/tests:
	$(Q)mkdir -p $@

$(B)/%.o: bridge/%.c | $(B)
	$(quiet) CC $<
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

# The Lua scripts are embedded as C strings so the binary is self-contained.
$(B)/scripts.c: $(LUA) bridge/lua/embed.sh | $(B)
	$(quiet) GEN $@
	$(Q)sh bridge/lua/embed.sh $(LUA) > $@

$(B)/scripts.o: $(B)/scripts.c
	$(quiet) CC $<
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

$(B)/libbridge.a: $(BRIDGE_OBJS)
	$(quiet) AR $@
	$(Q)$(AR) rcs $@ $^

$(B)/chat-bridge: $(B)/main.o $(B)/libbridge.a
	$(quiet) LINK $@
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LIBS)

$(B)/tests/%: tests/unit/%.c $(B)/libbridge.a | $(B)/tests
	$(quiet) CC $<
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< $(B)/libbridge.a $(LIBS) -lcmocka

$(B)/tests/lib_%.o: tests/lib/%.c | $(B)/tests
	$(quiet) CC $<
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

$(B)/tests/it_%.o: tests/integration/%.c | $(B)/tests
	$(quiet) CC $<
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

$(ITEST_BIN): $(ITEST_OBJS)
	$(quiet) LINK $@
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ -lpaho-mqtt3c $(PKG_LIBS) -lcmocka -pthread

# tests/security: one binary per file, each on the integration harness.
SEC_SRCS := $(wildcard tests/security/test_*.c)
SEC_BINS := $(SEC_SRCS:tests/security/%.c=$(B)/tests/sec_%)

.PRECIOUS: $(B)/tests/sec_%.o
$(B)/tests/sec_%.o: tests/security/%.c | $(B)/tests
	$(quiet) CC $<
	$(Q)$(CC) $(CPPFLAGS) -Itests/integration $(CFLAGS) -c -o $@ $<

$(B)/tests/sec_%: $(B)/tests/sec_%.o $(B)/tests/it_harness.o $(TEST_LIB)
	$(quiet) LINK $@
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ -lpaho-mqtt3c $(PKG_LIBS) -lcmocka -pthread

$(B)/tests/ft_%.o: tests/faults/%.c | $(B)/tests
	$(quiet) CC $<
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

$(FAULT_BIN): $(FAULT_OBJS)
	$(quiet) LINK $@
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ -lpaho-mqtt3c $(PKG_LIBS) -lcmocka -pthread

# Install what is missing from Debian's archive: as root directly, otherwise
# print the one command to run.
# Install the Debian packages listed in the shell variable missing: as
# root, with apt-get; otherwise print the one line to run, and fail.
INSTALL_MISSING = if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing:$$missing"; \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
	  else \
	    echo "missing packages; run:"; echo "  sudo apt-get install -y$$missing"; exit 1; \
	  fi; \
	fi

# Installing mosquitto starts Debian's mosquitto service on 127.0.0.1:1883
# (on a machine with systemd), where make run would then find a broker
# without the chat page's listener: when deps installed it just now, that
# service is stopped and disabled, and the line to undo it printed.
QUIET_DEBIAN_BROKER = case " $$missing " in *" mosquitto "*) \
	  if systemctl is-active --quiet mosquitto 2>/dev/null && \
	     systemctl disable --now mosquitto >/dev/null 2>&1; then \
	    echo "deps: stopped Debian's mosquitto service, started by its install: make run starts"; \
	    echo "      a broker of its own (systemctl enable --now mosquitto undoes this)"; \
	  fi;; esac

deps:
	@missing=""; for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$p"; \
	done; \
	$(INSTALL_MISSING) && \
	$(QUIET_DEBIAN_BROKER)

run: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)bash config/run.sh build/chat-bridge config/chat-bridge.yaml

unit: $(UNIT_BINS)
	$(Q)rc=0; for t in $(UNIT_BINS); do $(TEST_WRAPPER) $$t || rc=1; done; exit $$rc

integration: $(B)/chat-bridge $(ITEST_BIN) $(SEC_BINS) $(SEED_BIN)
	$(Q)rc=0; for t in $(ITEST_BIN) $(SEC_BINS) $(SEED_BIN) $(CLIENTS_BIN); do \
	  CB_BRIDGE=$(B)/chat-bridge $$t || rc=1; done; exit $$rc

# Fault injection, a few minutes: Redis, the broker and the bridge killed,
# paused and restarted under load (tests/faults/test_faults.c).
test-faults: deps
	$(Q)$(MAKE) --no-print-directory $(B)/chat-bridge $(FAULT_BIN) $(DISKFULL_BIN)
	$(Q)rc=0; CB_BRIDGE=$(B)/chat-bridge $(FAULT_BIN) || rc=1; \
	  CB_BRIDGE=$(B)/chat-bridge $(DISKFULL_BIN) || rc=1; exit $$rc

test: deps
	$(Q)$(MAKE) --no-print-directory all $(UNIT_BINS) $(ITEST_BIN) $(SEC_BINS) $(SEED_BIN) $(CLIENTS_BIN)
	$(Q)$(MAKE) --no-print-directory unit integration

VALGRIND := valgrind -q --error-exitcode=99 --leak-check=full \
	--errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect

check-memory: deps
	$(Q)$(MAKE) --no-print-directory all $(UNIT_BINS) $(ITEST_BIN) $(SEC_BINS) $(SEED_BIN) $(CLIENTS_BIN)
	$(Q)$(MAKE) --no-print-directory unit TEST_WRAPPER="$(VALGRIND)"
	$(Q)rc=0; for t in $(ITEST_BIN) $(SEC_BINS) $(SEED_BIN) $(CLIENTS_BIN); do \
	  CB_BRIDGE=$(B)/chat-bridge CB_WRAPPER="$(VALGRIND)" $$t || rc=1; done; exit $$rc

lint:
	$(Q)cppcheck --quiet --error-exitcode=1 --enable=warning,style,performance,portability \
	  --inline-suppr --suppress=missingIncludeSystem -Ibridge bridge tests

clean:
	rm -rf $(B)

-include $(wildcard $(B)/*.d $(B)/tests/*.d)

# ==================== disk full (tests/faults/test_diskfull.c) ====================
# Part of make test-faults: the journal on a 512 KiB tmpfs filled while
# Redis is down, then drained (about 35 s). It mounts, so it runs as root
# only; otherwise it says why and passes. Its own binary, on the workload
# and check of the fault tests and the integration harness.
DISKFULL_BIN := $(B)/tests/diskfull
DISKFULL_OBJS := $(B)/tests/ft_test_diskfull.o $(B)/tests/ft_workload.o \
	$(B)/tests/ft_check.o $(B)/tests/it_harness.o $(TEST_LIB)

$(DISKFULL_BIN): $(DISKFULL_OBJS)
	$(quiet) LINK $@
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ -lpaho-mqtt3c $(PKG_LIBS) -lcmocka -pthread
# ==================== end of disk full ====================

# ==================== bench (tests/bench/) ====================
# make bench         the full benchmark (several minutes): the table, the JSON
#                    line and the picture build/bench/bench.png (latency
#                    against offered rate, CPU per message by process; drawn
#                    by gnuplot, from gnuplot-nox: without it the run says so
#                    and goes on). Its mosquitto runs with the settings of
#                    config/mosquitto.conf (set_tcp_nodelay...); its load
#                    clients are libmosquitto (libmosquitto-dev).
# make bench-quick   the same, short (under a minute, for CI): fails only if
#                    a message went missing, was not acknowledged or was not
#                    stored, never on timing; its picture is
#                    build/bench/bench-quick.png
# make bench-cluster scaling out (bench --cluster, tests/bench/cluster.c,
#                    about 2 minutes): the broker alone, 1 bridge on one
#                    Redis, then 1, 2 and 3 bridges in one shared group on a
#                    3-primary Redis Cluster; throughput, CPU of every
#                    process, messages per bridge CPU second, shares.
# BENCH_ARGS adds options, e.g. make bench BENCH_ARGS="--json-only"; a quick
#                    profiling loop: BENCH_ARGS="--only saturation --duration 5";
#                    A/B against an older binary (medians over --rounds):
#                    make bench BENCH_ARGS="--compare /tmp/chat-bridge.old".
BENCH_BIN := $(B)/bench/bench
BENCH_SRCS := $(wildcard tests/bench/*.c)
BENCH_OBJS := $(BENCH_SRCS:tests/bench/%.c=$(B)/bench/%.o) $(TEST_LIB)
BENCH_LIBS := $(shell pkg-config --libs libmosquitto hiredis 2>/dev/null || echo -lmosquitto -lhiredis) \
	-pthread

.PHONY: bench bench-quick bench-cluster

$(B)/bench:
	$(Q)mkdir -p $@

$(B)/bench/%.o: tests/bench/%.c | $(B)/bench
	$(quiet) CC $<
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

$(BENCH_BIN): $(BENCH_OBJS)
	$(quiet) LINK $@
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(BENCH_LIBS)

bench: $(B)/chat-bridge $(BENCH_BIN)
	$(Q)$(BENCH_BIN) --bridge $(B)/chat-bridge --plot $(B)/bench/bench.png $(BENCH_ARGS)

bench-quick: $(B)/chat-bridge $(BENCH_BIN)
	$(Q)$(BENCH_BIN) --bridge $(B)/chat-bridge --quick --plot $(B)/bench/bench-quick.png \
	  $(BENCH_ARGS)

bench-cluster: $(B)/chat-bridge $(BENCH_BIN)
	$(Q)$(BENCH_BIN) --bridge $(B)/chat-bridge --cluster $(BENCH_ARGS)

-include $(wildcard $(B)/bench/*.d)
# ==================== end of bench ====================

# ==================== install (systemd service, man page) ====================
# make install      PREFIX=/usr/local DESTDIR= : $(PREFIX)/sbin/chat-bridge,
#                   $(PREFIX)/share/man/man8/chat-bridge.8, the unit in the
#                   systemd unit directory (ExecStart= pointing at the
#                   installed binary), /etc/chat-bridge/chat-bridge.yaml. An
#                   existing chat-bridge.yaml is kept: the shipped one is then
#                   installed beside it as chat-bridge.yaml.dist.
# make uninstall    removes them again, except a chat-bridge.yaml that differs
#                   from the shipped one.
# make test-service the install layout, systemd-analyze verify, and the
#                   sd_notify protocol against real mosquitto and redis-server
#                   (tests/service/, about 15 s).
PREFIX ?= /usr/local
DESTDIR ?=
SBINDIR ?= $(PREFIX)/sbin
MAN8DIR ?= $(PREFIX)/share/man/man8
CONFDIR := /etc/chat-bridge
SYSTEMDUNITDIR ?= $(shell pkg-config --variable=systemdsystemunitdir systemd 2>/dev/null || echo /lib/systemd/system)
INSTALL ?= install
SVC_TEST_BIN := $(B)/tests/service_notify
SVC_TEST_OBJS := $(B)/tests/svc_test_notify.o $(B)/tests/it_harness.o $(TEST_LIB)

.PHONY: install uninstall test-service

install: $(B)/chat-bridge
	$(Q)$(INSTALL) -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(MAN8DIR) \
	  $(DESTDIR)$(SYSTEMDUNITDIR) $(DESTDIR)$(CONFDIR)
	$(Q)$(INSTALL) -m 755 $(B)/chat-bridge $(DESTDIR)$(SBINDIR)/chat-bridge
	$(Q)$(INSTALL) -m 644 bridge/chat-bridge.8 $(DESTDIR)$(MAN8DIR)/chat-bridge.8
	$(Q)sed 's|/usr/local/sbin/chat-bridge|$(SBINDIR)/chat-bridge|g' systemd/chat-bridge.service \
	  > $(B)/chat-bridge.service
	$(Q)$(INSTALL) -m 644 $(B)/chat-bridge.service $(DESTDIR)$(SYSTEMDUNITDIR)/chat-bridge.service
	$(Q)if [ -e $(DESTDIR)$(CONFDIR)/chat-bridge.yaml ]; then \
	  $(INSTALL) -m 644 config/chat-bridge.yaml $(DESTDIR)$(CONFDIR)/chat-bridge.yaml.dist; \
	  echo "kept $(DESTDIR)$(CONFDIR)/chat-bridge.yaml; the shipped one is chat-bridge.yaml.dist"; \
	else \
	  $(INSTALL) -m 644 config/chat-bridge.yaml $(DESTDIR)$(CONFDIR)/chat-bridge.yaml; \
	fi
	@echo "installed; then: systemctl daemon-reload && systemctl enable --now chat-bridge"

uninstall:
	$(Q)rm -f $(DESTDIR)$(SBINDIR)/chat-bridge $(DESTDIR)$(MAN8DIR)/chat-bridge.8 \
	  $(DESTDIR)$(SYSTEMDUNITDIR)/chat-bridge.service $(DESTDIR)$(CONFDIR)/chat-bridge.yaml.dist
	$(Q)if cmp -s config/chat-bridge.yaml $(DESTDIR)$(CONFDIR)/chat-bridge.yaml; then \
	  rm -f $(DESTDIR)$(CONFDIR)/chat-bridge.yaml; \
	elif [ -e $(DESTDIR)$(CONFDIR)/chat-bridge.yaml ]; then \
	  echo "kept $(DESTDIR)$(CONFDIR)/chat-bridge.yaml: it differs from the shipped one"; \
	fi
	$(Q)rmdir $(DESTDIR)$(CONFDIR) 2>/dev/null || true

$(B)/tests/svc_%.o: tests/service/%.c | $(B)/tests
	$(quiet) CC $<
	$(Q)$(CC) $(CPPFLAGS) -Itests/integration $(CFLAGS) -c -o $@ $<

$(SVC_TEST_BIN): $(SVC_TEST_OBJS)
	$(quiet) LINK $@
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ -lpaho-mqtt3c $(PKG_LIBS) -lcmocka -pthread

test-service: deps
	$(Q)$(MAKE) --no-print-directory $(B)/chat-bridge $(SVC_TEST_BIN)
	$(Q)rc=0; \
	timeout 300 sh tests/service/test_install.sh || rc=1; \
	CB_BRIDGE=$(B)/chat-bridge timeout 300 $(SVC_TEST_BIN) || rc=1; \
	exit $$rc
# ==================== end of install ====================

# ==================== fuzz (tests/fuzz/) ====================
# make fuzz       build the libFuzzer targets (clang, ASan + UBSan) into
#                 build/fuzz/ and run each for FUZZ_SECONDS (default 60) on
#                 build/fuzz/corpus-<name>/, which starts as a copy of
#                 tests/fuzz/corpus/<name>/ and keeps what the runs find (the
#                 repository's corpus is never written). Fails when a target
#                 crashes, leaks or hangs; the input is kept as
#                 build/fuzz/<name>-crash-* (or leak-, timeout-, oom-) and
#                 the run's output in build/fuzz/<name>.log. Reproduce with
#                 build/fuzz/fuzz_<name> build/fuzz/<name>-crash-...
# make fuzz-ci    the same, 30 s per target (.ci/run).
# Targets: codec (payload decoder, validation, encoders), topic (router,
# reply topics), config (YAML loader). The bridge's modules are compiled
# again with clang and -fsanitize=fuzzer-no-link into build/fuzz/; only the
# ones the targets use are linked (through an archive). The config target
# links a copy of config.o whose open/access/stat calls go to in-memory
# files in tests/fuzz/fuzz_config.c, so fuzzed paths never reach the disk.
# FUZZ_OPT (not CFLAGS, which may hold gcc-only flags) sets the optimisation;
# FUZZ_ARGS adds libFuzzer options, e.g. make fuzz FUZZ_ARGS=-seed=1.
FUZZ_CC ?= clang
FUZZ_SECONDS ?= 60
FUZZ_OPT ?= -O1 -g
FUZZ_ARGS ?=
OBJCOPY ?= objcopy
FUZZ := $(B)/fuzz
FUZZ_NAMES := codec topic config
FUZZ_BINS := $(FUZZ_NAMES:%=$(FUZZ)/fuzz_%)
FUZZ_MODS := codec names topic journal log clock cluster rnode rexec sentinel
FUZZ_CFLAGS := $(FUZZ_OPT) -std=gnu11 -Wall -Wextra -Werror -pthread -MMD -MP \
	-fno-omit-frame-pointer -fno-sanitize-recover=all $(PKG_CFLAGS)
FUZZ_SAN := address,undefined
# The file system calls of config.o that the sandbox replaces; any other
# one left in the sandboxed copy fails the build (FUZZ_UNSANDBOXED).
FUZZ_SANDBOX := $(foreach f,open open64 access stat stat64,--redefine-sym $(f)=cb_fuzz_$(f))
FUZZ_UNSANDBOXED := open open64 openat openat64 creat creat64 fopen fopen64 freopen \
	access faccessat euidaccess eaccess stat stat64 lstat lstat64 fstatat fstatat64 \
	statx realpath opendir mkdir unlink rename truncate truncate64 chmod symlink link
FUZZ_RUN_FLAGS := -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=2048 \
	-max_len=8192 -print_final_stats=1

.PHONY: fuzz fuzz-ci fuzz-build
.SECONDARY: $(FUZZ_NAMES:%=$(FUZZ)/fuzz_%.o)

$(FUZZ):
	$(Q)mkdir -p $@

$(FUZZ)/%.o: bridge/%.c | $(FUZZ)
	$(quiet) FUZZCC $<
	$(Q)$(FUZZ_CC) $(CPPFLAGS) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link,$(FUZZ_SAN) -c -o $@ $<

$(FUZZ)/config-sandboxed.o: $(FUZZ)/config.o
	$(quiet) OBJCOPY $@
	$(Q)$(OBJCOPY) $(FUZZ_SANDBOX) $< $@
	$(Q)if nm -u $@ | awk '{ print $$2 }' | grep -Fx $(FUZZ_UNSANDBOXED:%=-e %); then \
	  echo "$@: config.c calls the file system outside the fuzz sandbox (tests/fuzz/fuzz_config.c)"; \
	  rm -f $@; exit 1; \
	fi

$(FUZZ)/libbridge-fuzz.a: $(FUZZ_MODS:%=$(FUZZ)/%.o) $(FUZZ)/config-sandboxed.o
	$(quiet) AR $@
	$(Q)rm -f $@ && $(AR) rcs $@ $^

$(FUZZ)/fuzz_%.o: tests/fuzz/fuzz_%.c | $(FUZZ)
	$(quiet) FUZZCC $<
	$(Q)$(FUZZ_CC) $(CPPFLAGS) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link,$(FUZZ_SAN) -c -o $@ $<

$(FUZZ)/fuzz_%: $(FUZZ)/fuzz_%.o $(FUZZ)/libbridge-fuzz.a
	$(quiet) LINK $@
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer,$(FUZZ_SAN) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) -pthread

fuzz-build: $(FUZZ_BINS)

# One target at a time; each on its own corpus copy, with its dictionary.
fuzz: deps
	$(Q)$(MAKE) --no-print-directory fuzz-build
	$(Q)rc=0; for n in $(FUZZ_NAMES); do \
	  mkdir -p $(FUZZ)/corpus-$$n && cp tests/fuzz/corpus/$$n/* $(FUZZ)/corpus-$$n/ || exit 1; \
	  dict=; [ -f tests/fuzz/$$n.dict ] && dict=-dict=tests/fuzz/$$n.dict; \
	  printf '  %-6s %s, %s s\n' FUZZ $$n $(FUZZ_SECONDS); \
	  if UBSAN_OPTIONS=print_stacktrace=1 $(FUZZ)/fuzz_$$n $(FUZZ_RUN_FLAGS) $$dict \
	       -artifact_prefix=$(FUZZ)/$$n- $(FUZZ_ARGS) $(FUZZ)/corpus-$$n \
	       > $(FUZZ)/$$n.log 2>&1; then \
	    grep -E '^#[0-9]+.*DONE' $(FUZZ)/$$n.log | tail -1 | sed 's/^/         /'; \
	    grep -E 'stat::(number_of_executed_units|average_exec_per_sec)' $(FUZZ)/$$n.log | sed 's/^/         /'; \
	  else \
	    rc=1; echo "fuzz: $$n FAILED, see $(FUZZ)/$$n.log:"; tail -n 60 $(FUZZ)/$$n.log; \
	  fi; \
	done; exit $$rc

fuzz-ci:
	$(Q)$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=30

-include $(wildcard $(FUZZ)/*.d)
# ==================== end of fuzz ====================

# ==================== cluster (tests/cluster/) ====================
# make test-cluster  two programs against real Redis Clusters on free
#                    loopback ports, each in a temporary directory removed
#                    afterwards (CB_KEEP=1 keeps it):
#   tests/cluster/test_slots.c  bridge/cluster.c (slot routing): three
#                    primaries joined with redis-cli --cluster create; keys
#                    spread and found on their slot's owner, a slot moved by
#                    hand (ASK, TRYAGAIN, MOVED), scripts on hash-tagged
#                    keys, a primary stopped. A few seconds.
#   tests/cluster/test_scale.c  the bridge scaled out (issue #8): three
#                    primaries and three replicas, one mosquitto, three
#                    bridges in one MQTT 5 shared group, numbered QoS 1
#                    messages over 200 rooms, each stored exactly once while
#                    a bridge is killed, busy rooms' slots are resharded and
#                    primaries fail over; history and delete across primaries;
#                    other writers (the seed's own commands over hiredis, on
#                    every primary: republished once, indexed, deleted, and
#                    written while the bridges were stopped). About two
#                    minutes; CB_SCALE_ONLY='*reshard*' runs only
#                    the matching scenarios, CB_WRAPPER runs the bridges under
#                    a wrapper (valgrind).
CLUSTER_TEST_BIN := $(B)/tests/cluster_slots
CLUSTER_SCALE_BIN := $(B)/tests/cluster_scale

.PHONY: test-cluster

$(B)/tests/cl_%.o: tests/cluster/%.c | $(B)/tests
	$(quiet) CC $<
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

$(CLUSTER_TEST_BIN): $(B)/tests/cl_test_slots.o $(TEST_LIB) $(B)/libbridge.a
	$(quiet) LINK $@
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) -lcmocka -pthread

$(CLUSTER_SCALE_BIN): $(B)/tests/cl_test_scale.o $(B)/tests/it_harness.o $(B)/tests/lib_numpub.o \
	$(TEST_LIB)
	$(quiet) LINK $@
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ -lpaho-mqtt3c $(PKG_LIBS) -lcmocka -pthread

test-cluster: deps
	$(Q)$(MAKE) --no-print-directory $(B)/chat-bridge $(CLUSTER_TEST_BIN) $(CLUSTER_SCALE_BIN)
	$(Q)rc=0; timeout 120 $(CLUSTER_TEST_BIN) || rc=1; \
	  CB_BRIDGE=$(B)/chat-bridge timeout 300 $(CLUSTER_SCALE_BIN) || rc=1; exit $$rc
# ==================== end of cluster ====================

# ==================== sentinel (tests/sentinel/) ====================
# make test-sentinel  the bridge on a primary that Redis Sentinel names
#                    (issue #15), against real servers on free loopback
#                    ports in a temporary directory removed afterwards
#                    (CB_KEEP=1 keeps it): a primary, two replicas, three
#                    sentinels (redis-server --sentinel), one mosquitto, the
#                    bridge, numbered QoS 1 messages. The primary killed
#                    (with and without redis.wait_replicas: the loss and the
#                    failover gap printed), the old primary back as a
#                    replica, SENTINEL FAILOVER mid-stream, the sentinels
#                    down, a wrong master name and sentinel password. About
#                    three minutes; CB_SENTINEL_ONLY='*switchover*' runs only
#                    the matching scenarios, CB_WRAPPER runs the bridge under
#                    a wrapper (valgrind).
SENTINEL_TEST_BIN := $(B)/tests/sentinel

.PHONY: test-sentinel

$(B)/tests/st_%.o: tests/sentinel/%.c | $(B)/tests
	$(quiet) CC $<
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

$(SENTINEL_TEST_BIN): $(B)/tests/st_test_sentinel.o $(B)/tests/it_harness.o \
	$(B)/tests/lib_numpub.o $(TEST_LIB)
	$(quiet) LINK $@
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ -lpaho-mqtt3c $(PKG_LIBS) -lcmocka -pthread

test-sentinel: deps
	$(Q)$(MAKE) --no-print-directory $(B)/chat-bridge $(SENTINEL_TEST_BIN)
	$(Q)CB_BRIDGE=$(B)/chat-bridge timeout 600 $(SENTINEL_TEST_BIN)
# ==================== end of sentinel ====================

# ==================== seed (tests/seed/) ====================
# Part of make test (the integration target): the seed's own writer (the
# exact Redis commands of its Python Chat class, issued over hiredis) in one
# chat with MQTT clients, against real redis-server, mosquitto and bridge
# (issue #13). Its own binary, on the integration harness.
$(B)/tests/sd_%.o: tests/seed/%.c | $(B)/tests
	$(quiet) CC $<
	$(Q)$(CC) $(CPPFLAGS) -Itests/integration $(CFLAGS) -c -o $@ $<

$(SEED_BIN): $(B)/tests/sd_test_seed.o $(B)/tests/it_client.o $(B)/tests/it_harness.o $(TEST_LIB)
	$(quiet) LINK $@
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ -lpaho-mqtt3c $(PKG_LIBS) -lcmocka -pthread
-include $(wildcard $(B)/tests/sd_*.d)
# ==================== end of seed ====================

# ==================== clients (tests/clients/) ====================
# Part of make test (the integration target) and make check-memory: what
# chat clients need beyond send/history/delete (issue #14): catch-up with
# "after", edits, read markers and their events, MQTT 3.1.1 replies,
# hostile requests, identity "topic". Its own binary, on the integration
# harness, against real redis-server, mosquitto and bridge. CLIENTS_BIN is
# defined here, after the integration rule's prerequisites were read, so
# it is added to them here too (the recipes expand it when they run).
CLIENTS_BIN := $(B)/tests/clients

integration: $(CLIENTS_BIN)

$(B)/tests/ct_%.o: tests/clients/%.c | $(B)/tests
	$(quiet) CC $<
	$(Q)$(CC) $(CPPFLAGS) -Itests/integration $(CFLAGS) -c -o $@ $<

$(CLIENTS_BIN): $(B)/tests/ct_test_clients.o $(B)/tests/it_client.o $(B)/tests/it_harness.o \
	$(TEST_LIB)
	$(quiet) LINK $@
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ -lpaho-mqtt3c $(PKG_LIBS) -lcmocka -pthread
-include $(wildcard $(B)/tests/ct_*.d)
# ==================== end of clients ====================

# ==================== web (config/www, tests/web) ====================
# The chat page (issue #17): plain HTML, CSS and JavaScript in config/www/
# and MQTT.js, the browser bundle of the npm package mqtt, pinned by
# config/www/package-lock.json.
# make web        npm ci in config/www/ (node_modules, not committed), then
#                 the page the broker serves, in build/www/: the sources and
#                 node_modules/mqtt/dist/mqtt.min.js. make run builds it and
#                 its private mosquitto serves it (config/run.sh); when npm
#                 fails (no registry), make run goes on without the page.
# make test-web   headless Chromium (Debian's /usr/bin/chromium) driven by
#                 Playwright (playwright-core, pinned by
#                 tests/web/package-lock.json), node's test runner, against a
#                 real mosquitto (WebSocket listener serving build/www),
#                 redis-server and bridge on free loopback ports in a
#                 temporary directory (CB_KEEP=1 keeps it): two users live,
#                 scroll-back, a broker restart, edit and delete, refused
#                 input; saves build/web/chat.png, the README's picture.
#                 About half a minute.
# Node.js, npm and Chromium come from Debian when missing, like deps: a
# package counts as present when dpkg has it or its command exists (a
# Node.js installed otherwise, e.g. one that bundles npm and conflicts with
# Debian's npm package, is used as it is).
WWW := $(B)/www
WWW_SRCS := $(wildcard config/www/*.html config/www/*.css config/www/*.js)
WWW_NPM := config/www/node_modules/.package-lock.json
WEB_TEST_NPM := tests/web/node_modules/.package-lock.json
NPM_CI := npm ci --ignore-scripts --no-audit --no-fund --loglevel=error

.PHONY: web web-run deps-node deps-web test-web

# package:command pairs checked by deps-node and deps-web.
deps-node: WEB_DEBS := nodejs:node npm:npm
deps-web: WEB_DEBS := nodejs:node npm:npm chromium:chromium
deps-node deps-web:
	@missing=""; for pc in $(WEB_DEBS); do p=$${pc%%:*}; c=$${pc#*:}; \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || \
	    command -v $$c >/dev/null 2>&1 || missing="$$missing $$p"; \
	done; \
	$(INSTALL_MISSING)

$(WWW_NPM): config/www/package.json config/www/package-lock.json | deps-node
	$(quiet) NPM config/www
	$(Q)cd config/www && $(NPM_CI)
	$(Q)touch $@

$(WEB_TEST_NPM): tests/web/package.json tests/web/package-lock.json | deps-node
	$(quiet) NPM tests/web
	$(Q)cd tests/web && $(NPM_CI)
	$(Q)touch $@

$(WWW)/mqtt.min.js: $(WWW_NPM)
	$(quiet) CP $@
	$(Q)mkdir -p $(WWW) && cp config/www/node_modules/mqtt/dist/mqtt.min.js $@

$(WWW)/%: config/www/%
	$(quiet) CP $@
	$(Q)mkdir -p $(WWW) && cp $< $@

web: $(WWW)/mqtt.min.js $(WWW_SRCS:config/www/%=$(WWW)/%)
	@:

# make run: the page when it can be built; config/run.sh says when not.
run: web-run
web-run: deps
	$(Q)$(MAKE) --no-print-directory web || \
	  echo "run: the chat page could not be built (above); starting without it"

test-web: deps deps-web
	$(Q)$(MAKE) --no-print-directory $(B)/chat-bridge web $(WEB_TEST_NPM)
	$(Q)CB_BRIDGE=$(B)/chat-bridge CB_WWW=$(WWW) timeout 300 node --test tests/web/test_web.mjs
# ==================== end of web ====================
