# chat-bridge -- MQTT to Redis chat bridge.
#
#   make            build build/chat-bridge
#   make run        install missing packages, build, run with config/chat-bridge.yaml
#   make test       install missing packages, build, run unit + integration tests
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
	mosquitto mosquitto-clients redis-server redis-tools valgrind cppcheck

PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS = $(shell pkg-config --libs $(PKGS) 2>/dev/null)

override CFLAGS += -std=gnu11 -Wall -Wextra -Werror -pthread -MMD -MP $(PKG_CFLAGS)
override CPPFLAGS += -Ibridge -Ibuild
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
ITEST_SRCS := $(wildcard tests/integration/*.c)
ITEST_OBJS := $(ITEST_SRCS:tests/integration/%.c=$(B)/tests/it_%.o)

.PHONY: all deps run test unit integration check-memory lint clean
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

$(B)/tests/it_%.o: tests/integration/%.c | $(B)/tests
	$(quiet) CC $<
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

$(ITEST_BIN): $(ITEST_OBJS)
	$(quiet) LINK $@
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ -lpaho-mqtt3c $(PKG_LIBS) -lcmocka -pthread

# Install what is missing from Debian's archive: as root directly, otherwise
# print the one command to run.
deps:
	@missing=""; for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing:$$missing"; \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
	  else \
	    echo "missing packages; run:"; echo "  sudo apt-get install -y$$missing"; exit 1; \
	  fi; \
	fi

run: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)bash config/run.sh build/chat-bridge config/chat-bridge.yaml

unit: $(UNIT_BINS)
	$(Q)rc=0; for t in $(UNIT_BINS); do $(TEST_WRAPPER) $$t || rc=1; done; exit $$rc

integration: $(B)/chat-bridge $(ITEST_BIN)
	$(Q)CB_BRIDGE=$(B)/chat-bridge $(ITEST_BIN)

test: deps
	$(Q)$(MAKE) --no-print-directory all $(UNIT_BINS) $(ITEST_BIN)
	$(Q)$(MAKE) --no-print-directory unit integration

VALGRIND := valgrind -q --error-exitcode=99 --leak-check=full \
	--errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect

check-memory: deps
	$(Q)$(MAKE) --no-print-directory all $(UNIT_BINS) $(ITEST_BIN)
	$(Q)$(MAKE) --no-print-directory unit TEST_WRAPPER="$(VALGRIND)"
	$(Q)CB_BRIDGE=$(B)/chat-bridge CB_WRAPPER="$(VALGRIND)" $(ITEST_BIN)

lint:
	$(Q)cppcheck --quiet --error-exitcode=1 --enable=warning,style,performance,portability \
	  --inline-suppr --suppress=missingIncludeSystem -Ibridge bridge tests

clean:
	rm -rf $(B)

-include $(wildcard $(B)/*.d $(B)/tests/*.d)
